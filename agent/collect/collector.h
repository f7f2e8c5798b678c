#pragma once
// Collector: one collection cycle. Follows the domains libvirt reports, reads every thread's
// procfs files and counter group once, and produces a Snapshot.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/collect/event_plan.h"
#include "agent/collect/vm_state.h"
#include "agent/discovery/hypervisor.h"
#include "exporters/snapshot.h"

namespace kvmprof {

class Collector {
 public:
  // `plan`: the configured events as decided for this host (plan_events).
  Collector(HostRoot root, PerfBackend& perf, std::vector<PlannedEvent> plan);

  // `domains` is nullopt when libvirt could not be asked this cycle: the VMs already known
  // are then still measured through procfs and perf, and libvirt's exit counts are absent.
  Snapshot collect(const std::optional<std::vector<DomainRecord>>& domains);
  size_t open_fds() const;

 private:
  struct Vm {
    DomainRecord record;
    std::unique_ptr<VmState> state;  // null while the QEMU process is not found
    std::string problem;             // why the VM is not (fully) mapped; logged once
  };

  void sync(const std::vector<DomainRecord>& domains);
  void attach(Vm& vm);
  void set_problem(Vm& vm, const std::string& reason, const std::string& detail);
  void update_liveness();
  VmSample sample(const Vm& vm) const;
  std::vector<SourceStatus> sources(bool libvirt_answered) const;
  SourceStatus event_source(size_t index) const;
  SourceStatus ticks_source() const;

  HostRoot root_;
  PerfBackend& perf_;
  uint64_t ns_per_tick_;
  std::vector<PlannedEvent> plan_;  // as configured, with what each counts or why not
  std::vector<EventAttr> slots_;    // every counter of every planned event: one group per thread
  std::vector<size_t> owner_;       // slot -> plan_ index
  std::vector<bool> live_;          // per slot; tracepoints latch once a count is seen
  std::map<std::string, Vm> vms_;     // by UUID
  bool libvirt_exits_seen_ = false;
  uint64_t cycles_ = 0;
  ErrorCounts open_errors_;
  ErrorCounts read_errors_;
  std::map<std::string, uint64_t> discovery_errors_;
};

}  // namespace kvmprof
