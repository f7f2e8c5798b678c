#include "agent/collect/thread_reader.h"

namespace kvmprof {

Result<ThreadReader> ThreadReader::open(const HostRoot& root, pid_t pid, pid_t tid) {
  std::string where = "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid);
  auto sched = root.open_read(where + "/schedstat");
  if (!sched.ok()) return sched.error();
  auto stat = root.open_read(where + "/stat");
  if (!stat.ok()) return stat.error();
  return ThreadReader(where, std::move(*sched), std::move(*stat));
}

Result<ThreadTimes> ThreadReader::read() const {
  auto sched_text = pread_all(sched_, where_ + "/schedstat");
  if (!sched_text.ok()) return sched_text.error();
  auto stat_text = pread_all(stat_, where_ + "/stat");
  if (!stat_text.ok()) return stat_text.error();
  auto sched = parse_schedstat(*sched_text);
  if (!sched.ok()) return Error{0, where_ + ": " + sched.error().context};
  auto ticks = parse_task_stat(*stat_text);
  if (!ticks.ok()) return Error{0, where_ + ": " + ticks.error().context};
  return ThreadTimes{*sched, *ticks};
}

}  // namespace kvmprof
