#pragma once
// Collector: one collection cycle. Follows the domains libvirt reports, gives each its policy,
// reads every thread's procfs files and counter groups once, and produces a Snapshot.
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/collect/event_plan.h"
#include "agent/collect/vm_state.h"
#include "agent/discovery/hypervisor.h"
#include "exporters/snapshot.h"

namespace kvmprof {

// The policies as planned for this host: named ones first-match in file order, default last.
struct CollectorPlan {
  std::vector<PolicyPlan> policies;
  PolicyPlan default_policy;
  Limits limits;
  std::chrono::milliseconds interval{5000};  // for policies without their own

  // How often collect() must run so every policy is read on time.
  std::chrono::milliseconds cycle() const;
};

class Collector {
 public:
  Collector(HostRoot root, PerfBackend& perf, CollectorPlan plan);

  // `domains` is nullopt when libvirt could not be asked this cycle: the VMs already known
  // are then still measured through procfs and perf, and libvirt's exit counts are absent.
  Snapshot collect(const std::optional<std::vector<DomainRecord>>& domains);
  // A reloaded config: VMs whose policy now opens different counters are reopened at the next
  // cycle (continuing counters keep their counts); the others are not touched.
  void apply(CollectorPlan plan);
  size_t open_fds() const;

 private:
  struct Vm {
    DomainRecord record;
    std::unique_ptr<VmState> state;  // null while the QEMU process is not found
    std::string problem;             // why the VM is not (fully) mapped; logged once
    std::chrono::steady_clock::time_point next_read{};  // per its policy's interval
    std::string policy;  // resolved when its name, title or metadata or the config changes
  };

  void sync(const std::vector<DomainRecord>& domains);
  void attach(Vm& vm, const std::shared_ptr<const PolicyPlan>& plan);
  void set_problem(Vm& vm, const std::string& reason, const std::string& detail);
  void enforce_limits();
  void publish(std::map<std::string, PolicyPlan> plans);
  std::string policy_name(const DomainRecord& record) const;
  void update_liveness();
  VmSample sample(const Vm& vm) const;
  std::vector<SourceStatus> sources(bool libvirt_answered) const;
  SourceStatus event_source(const PlannedEvent& event) const;
  SourceStatus ticks_source() const;
  void add_event_info(Snapshot& snap) const;

  HostRoot root_;
  PerfBackend& perf_;
  uint64_t ns_per_tick_;
  CollectorPlan config_;
  // The plans VMs use, after host limits: by policy name.
  std::map<std::string, std::shared_ptr<const PolicyPlan>> effective_;
  std::vector<LimitAction> limit_actions_;
  std::set<std::string> live_;  // events with exportable values; tracepoints join once seen
  std::map<std::string, Vm> vms_;  // by UUID
  bool libvirt_exits_seen_ = false;
  uint64_t cycles_ = 0;
  ErrorCounts open_errors_;
  ErrorCounts read_errors_;
  std::map<std::string, uint64_t> discovery_errors_;
};

}  // namespace kvmprof
