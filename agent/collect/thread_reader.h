#pragma once
// ThreadReader: keeps /proc/PID/task/TID/{schedstat,stat} open and re-reads them with one
// pread() each per cycle.
#include <sys/types.h>

#include <string>
#include <utility>

#include "agent/system/host_root.h"
#include "agent/system/procfs.h"

namespace kvmprof {

struct ThreadTimes {
  SchedStat sched;
  TaskTicks ticks;
};

class ThreadReader {
 public:
  // Fails with ENOENT/ESRCH when the thread is gone.
  static Result<ThreadReader> open(const HostRoot& root, pid_t pid, pid_t tid);
  // Fails with ESRCH once the thread has exited.
  Result<ThreadTimes> read() const;

 private:
  ThreadReader(std::string where, Fd sched, Fd stat)
      : where_(std::move(where)), sched_(std::move(sched)), stat_(std::move(stat)) {}
  std::string where_;
  Fd sched_;
  Fd stat_;
};

}  // namespace kvmprof
