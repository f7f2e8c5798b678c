#pragma once
// VmState: one running domain's QEMU threads, their readers and counter groups, kept from
// cycle to cycle so each cycle costs one read per file and one read per counter group.
#include <sys/types.h>

#include <array>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "agent/collect/event_plan.h"
#include "agent/collect/thread_cpu.h"
#include "agent/collect/thread_reader.h"
#include "agent/system/perf_group.h"
#include "exporters/snapshot.h"

namespace kvmprof {

using ErrorCounts = std::map<std::pair<std::string, std::string>, uint64_t>;

// What every VM needs during one cycle.
struct CollectContext {
  const HostRoot& root;
  PerfBackend& perf;
  uint64_t ns_per_tick;
  ErrorCounts& open_errors;  // (event, errno)
  ErrorCounts& read_errors;  // (source, errno)
};

struct VcpuThread {
  unsigned index = 0;
  ThreadReader reader;
  ThreadCpu cpu;
  std::vector<PerfGroup> groups;  // the plan's groups, one read each
  std::vector<double> base;       // per slot: count carried over from an earlier plan
  std::vector<double> counts;     // per slot: base + scaled count, never decreasing
  std::vector<uint64_t> enabled_ns, running_ns;  // per slot, from its group's last read
};

struct EmulatorThread {
  ThreadReader reader;
  ThreadCpu cpu;
};

class VmState {
 public:
  VmState(pid_t pid, std::shared_ptr<const PolicyPlan> plan) : pid_(pid), plan_(std::move(plan)) {}

  // Finds new and vanished threads; false when the QEMU process itself is gone.
  bool refresh_threads(CollectContext& ctx, unsigned expected_vcpus);
  // Listing threads costs 4 syscalls; exits show up anyway as ESRCH on the next read, so a
  // list is needed only at first, when vCPUs are missing, or for a periodic reconcile.
  bool needs_rescan(unsigned expected_vcpus) const { return !listed_ || vcpus_.size() != expected_vcpus; }
  void read(CollectContext& ctx);
  // Reopens every vCPU's counters for another plan. Events that continue (same event and
  // mode) carry their counts over, so their counters never go down.
  void switch_plan(CollectContext& ctx, std::shared_ptr<const PolicyPlan> plan);

  const PolicyPlan& plan() const { return *plan_; }
  const std::shared_ptr<const PolicyPlan>& plan_ptr() const { return plan_; }
  // Event values are exported only for events in `live` (a tracepoint that never fires on
  // this host is not live).
  std::vector<VcpuSample> vcpu_samples(const std::set<std::string>& live) const;
  std::vector<ModeValue> emulator_cpu() const;
  size_t vcpu_count() const { return vcpus_.size(); }
  size_t counter_count() const;
  size_t fd_count() const;
  const std::map<pid_t, VcpuThread>& vcpus() const { return vcpus_; }

 private:
  void add_thread(CollectContext& ctx, pid_t tid);
  void add_vcpu(CollectContext& ctx, pid_t tid, unsigned index, ThreadReader reader);
  void open_groups(CollectContext& ctx, pid_t tid, VcpuThread& vcpu) const;
  void retire_emulator(pid_t tid);
  void reclassify_unnamed(CollectContext& ctx);
  void read_vcpu(CollectContext& ctx, VcpuThread& vcpu);

  pid_t pid_;
  std::shared_ptr<const PolicyPlan> plan_;
  bool listed_ = false;
  std::map<pid_t, VcpuThread> vcpus_;
  std::map<pid_t, EmulatorThread> emulator_;
  // CPU time of emulator threads that have exited, so the VM's counter never goes down.
  std::array<uint64_t, 3> retired_split_{};
  uint64_t retired_unsplit_ = 0;
};

}  // namespace kvmprof
