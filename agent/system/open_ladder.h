#pragma once
// The open ladder: opens one planned counter and answers the kernel's refusals the way perf
// does (tools/perf/util/evsel.c evsel__open_cpu and its callers), but never widens what the
// user explicitly asked for. Every step is returned so the caller logs and counts it.
#include <string>
#include <vector>

#include "agent/system/perf_backend.h"
#include "policy/decision.h"

namespace kvmprof {

struct LadderStep {
  std::string code;     // metric label: attr_size, no_clockid, no_sample_identifier, drop_exclude_bits,
                        // set_exclude_guest, lower_precise, raise_nofile
  int err = 0;          // the errno that caused the step
  std::string action;   // what was changed, e.g. "dropped exclude_guest/exclude_host"
  std::string quirk;    // the quirk id behind the step, if any
};

struct LadderOutcome {
  Result<Fd> fd = Error{0, "not opened"};
  perf_event_attr attr{};     // what was finally asked of the kernel
  std::string mode;           // what it counts after the steps ("all" once exclude bits are dropped)
  std::vector<LadderStep> steps;
  DecisionStatus status = DecisionStatus::kOk;  // kRefused/kUnsupported when not opened
  std::string reason;         // why not opened, with what to do
};

LadderOutcome open_with_ladder(PerfBackend& perf, const Decision& decision, const PlannedCounter& counter,
                               pid_t tid, int cpu, int group_fd, const HostModel& host);

}  // namespace kvmprof

namespace kvmprof {

struct OpenedCounter {
  std::string mode;  // "all", "host", "guest"
  std::string pmu;
  perf_event_attr attr{};
  Fd fd;
};

// A whole decision opened: all its counters or none. When the kernel made the ladder drop the
// exclude bits of a split, the guest counter would count everything again, so it is skipped
// and the decision counts "all" once.
struct OpenedDecision {
  std::vector<OpenedCounter> counters;
  std::string semantics;
  DecisionStatus status = DecisionStatus::kOk;
  std::string reason;
  std::vector<LadderStep> steps;
};

OpenedDecision open_decision(PerfBackend& perf, const Decision& decision, pid_t tid, int cpu, int group_fd,
                             const HostModel& host);

}  // namespace kvmprof
