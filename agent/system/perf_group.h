#pragma once
// PerfGroup: one perf counter group on one thread, read with a single read() per interval
// (PERF_FORMAT_GROUP | ID | TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING).
#include <linux/perf_event.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/system/perf_backend.h"

namespace kvmprof {

struct GroupReading {
  uint64_t enabled_ns = 0;
  uint64_t running_ns = 0;
  std::vector<std::optional<uint64_t>> raw;  // by event slot; nullopt where not opened
};

struct EventAttr {
  std::string name;  // label value, e.g. "task-clock"
  std::string mode;  // what it counts: "all", "host" or "guest"
  perf_event_attr attr{};
  std::string pmu;   // hardware PMU ("cpu", "cpu_core", "cpu_atom", ...); "" for software and tracepoints
};

class PerfGroup {
 public:
  // Opens the events at `slots` on `tid` with the attrs as planned (see event_plan.h), the
  // first as leader; readings are indexed by slot over all of `events`. All or nothing: when
  // the kernel refuses one, the others are closed again, the refusal is counted in `errors`
  // under that event, and its errno returned.
  static Result<PerfGroup> open(PerfBackend& backend, pid_t tid, const std::vector<EventAttr>& events,
                                const std::vector<size_t>& slots, ErrorCounts& errors);

  size_t fd_count() const { return fds_.size(); }
  Result<GroupReading> read(PerfBackend& backend) const;

 private:
  PerfGroup(size_t slots) : slots_(slots) {}
  size_t slots_;
  std::vector<Fd> fds_;
  std::map<uint64_t, size_t> slot_by_id_;  // kernel event id -> event slot
};

// Decodes a PERF_FORMAT_GROUP|ID|TOTAL_TIME_* buffer; bytes come from the kernel, so every
// length and count is checked.
Result<GroupReading> decode_group_read(std::span<const std::byte> bytes, size_t slots,
                                       const std::map<uint64_t, size_t>& slot_by_id);


}  // namespace kvmprof
