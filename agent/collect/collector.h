#pragma once
// Collector: one collection cycle. It feeds libvirt's answers to the Inventory (which
// announces the thread lifecycle to the consumers: CPU accounting, counter groups, and any
// added with add_consumer), gives each policy its share of the host limits, reads every due
// VM once, and builds the Snapshot. Whether a source is live comes from what really opened and
// counted, never from the plan; a source that is not live has no series.
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "agent/collect/counter_groups.h"
#include "agent/collect/cpu_accounting.h"
#include "agent/collect/event_plan.h"
#include "agent/collect/inventory.h"
#include "agent/collect/sampler.h"
#include "exporters/snapshot.h"
#include "policy/limits.h"

namespace kvmprof {

// Why a source is not live on a host that runs no VM yet: not a problem, just nothing to measure.
inline constexpr const char* kNoVcpuThreads = "no vCPU thread to measure yet";

// The policies as planned for this host: named ones first-match in file order, default last.
struct CollectorPlan {
  std::vector<PolicyPlan> policies;
  PolicyPlan default_policy;
  Limits limits;
  std::chrono::milliseconds interval{5000};  // for policies without their own
  ErrorCounts open_fallbacks;  // (event, ladder step) over every probe the agent made: never goes down

  // How often collect() must run so every policy is read on time.
  std::chrono::milliseconds cycle() const;
};

class Collector {
 public:
  using Clock = std::chrono::steady_clock;

  Collector(HostRoot root, PerfBackend& perf, CollectorPlan plan);

  // A reloaded config: every VM's policy is resolved again; VMs whose counters change are
  // reopened (their totals continue), the others are not touched.
  void apply(CollectorPlan plan);
  // Another consumer of the thread lifecycle; it hears of threads found from now on.
  void add_consumer(ThreadConsumer& consumer) { inventory_.add_consumer(consumer); }
  // One cycle. `fresh`: libvirt's answer when a new one came since the last cycle (the VMs
  // already known are measured either way). `libvirt_live`: libvirt answers now; its exit
  // counters are exported only then.
  Snapshot collect(const std::vector<DomainRecord>* fresh, bool libvirt_live, Clock::time_point now = Clock::now());
  size_t open_fds() const { return cpu_.fd_count() + counters_.fd_count() + sampler_.fd_count(); }
  // The sampler, for the sampler thread (it drains on its own lock).
  Sampler& sampler() { return sampler_; }
  // The samples of the last window, for profiles (on their own lock).
  ProfileStore& profiles() { return profiles_; }

 private:
  std::vector<const PolicyPlan*> plans() const;
  std::string policy_of(const DomainRecord& record) const;
  void enforce_limits();
  void recheck_limits();
  void note_fd_room(size_t room, size_t demand);
  void read(const std::string& uuid, Clock::time_point now);
  VmSample sample(const VmEntry& vm, bool libvirt_live, const std::set<std::string>& live) const;
  std::vector<SourceStatus> sources(bool libvirt_live, const std::map<std::string, EventHealth>& health);
  SourceStatus event_source(const PlannedEvent& event, const std::map<std::string, EventHealth>& health) const;
  void add_sampling_sources(std::vector<SourceStatus>& out) const;
  void add_event_info(Snapshot& snap, const std::map<std::string, SourceStatus>& perf) const;

  HostRoot root_;
  uint64_t ns_per_tick_;
  int paranoid_;  // perf_event_paranoid, for what to do when the kernel refuses counters
  ErrorCounts open_errors_;
  ErrorCounts read_errors_;
  CollectorPlan config_;
  Inventory inventory_;
  CpuAccounting cpu_;
  CounterGroups counters_;
  ProfileStore profiles_;
  Sampler sampler_;
  std::optional<size_t> memlock_ceiling_;  // the sampler's, once applied to the limits
  size_t threads_seen_ = 0;                // QEMU threads when the sampling limits were last checked
  bool short_of_fds_ = false;              // RLIMIT_NOFILE takes from the policies (logged)
  std::map<std::string, std::shared_ptr<const PolicyPlan>> effective_;  // by policy, after the host limits
  LimitOutcome limits_;
  std::vector<LimitAction> limit_actions_;
  std::set<std::string> tracepoints_fired_;  // tracepoints some vCPU thread has hit
};

}  // namespace kvmprof
