#pragma once
// Parsers for /proc/PID/task/TID/{stat,schedstat,comm} and /proc/PID/cmdline.
// They take text, never paths, so tests feed them strings.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/system/result.h"

namespace kvmprof {

// Tick fields of /proc/.../stat (clock ticks, USER_HZ). The kernel adds guest time to
// utime as well as to guest_time (kernel/sched/cputime.c account_guest_time), so host user
// time is utime - guest_time.
struct TaskTicks {
  uint64_t utime = 0;       // field 14
  uint64_t stime = 0;       // field 15
  uint64_t guest_time = 0;  // field 43
};

// /proc/.../schedstat: exact nanoseconds from the scheduler.
struct SchedStat {
  uint64_t run_ns = 0;   // time on a CPU
  uint64_t wait_ns = 0;  // time runnable, waiting on a run queue
  uint64_t slices = 0;
};

Result<TaskTicks> parse_task_stat(std::string_view text);
// The state letter of a stat line (R, S, D, Z for a zombie, X for dead, ...).
std::optional<char> parse_task_state(std::string_view text);
Result<SchedStat> parse_schedstat(std::string_view text);

// NUL-separated argv of /proc/PID/cmdline.
std::vector<std::string> parse_cmdline(std::string_view text);

// QEMU names vCPU threads "CPU <index>/<accel>" (e.g. "CPU 0/KVM", "CPU 3/TCG") when it
// runs with -name debug-threads=on, which libvirt always passes. Returns the index.
std::optional<unsigned> vcpu_index_from_comm(std::string_view comm);

}  // namespace kvmprof
