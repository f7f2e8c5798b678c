#pragma once
// ThreadCpu: one thread's CPU time, exact in total and split by mode only where the tick
// fields can be trusted.
//
// The total comes from schedstat (ns, exact). The split comes from the tick fields of
// /proc/.../stat. On some hosts (seen on nested PVM KVM) a vCPU thread's tick fields stay
// 0/0/0 while schedstat shows seconds of run time; there the split is refused and only the
// total is reported (mode "all"). The decision is sticky: once untrusted, a thread stays so.
//
// The split counters are kept monotonic and sum exactly to the total, in the way the kernel
// scales utime/stime to sum_exec_runtime (kernel/sched/cputime.c, cputime_adjust()).
#include <array>
#include <cstdint>

#include "agent/system/procfs.h"

namespace kvmprof {

enum CpuMode : size_t { kGuest = 0, kHostKernel = 1, kHostUser = 2 };
inline constexpr std::array<const char*, 3> kCpuModeNames{"guest", "host_kernel", "host_user"};

class ThreadCpu {
 public:
  explicit ThreadCpu(uint64_t ns_per_tick) : ns_per_tick_(ns_per_tick) {}

  void update(const SchedStat& sched, const TaskTicks& ticks);

  bool trusted() const { return trusted_; }
  uint64_t total_ns() const { return total_ns_; }
  uint64_t wait_ns() const { return wait_ns_; }
  // Split so far; frozen at the moment the thread became untrusted.
  const std::array<uint64_t, 3>& split_ns() const { return split_; }
  // Time not attributed to a mode: everything after the split froze.
  uint64_t unsplit_ns() const;

 private:
  bool consistent(const TaskTicks& ticks) const;
  void distribute(const std::array<uint64_t, 3>& ticks);

  uint64_t ns_per_tick_;
  bool trusted_ = true;
  uint64_t total_ns_ = 0;
  uint64_t wait_ns_ = 0;
  std::array<uint64_t, 3> split_{};
};

// The tick split {guest, host_kernel, host_user} of a stat line. Guest time is inside
// utime (kernel/sched/cputime.c account_guest_time), hence host user = utime - guest_time.
std::array<uint64_t, 3> tick_split(const TaskTicks& ticks);

}  // namespace kvmprof
