#pragma once
// The decision engine: for one event spec and the requested guest semantics on one host, which
// perf_event_attr(s) to open, what they will really count, and why. Pure: no I/O.
//
// Explicit requests (guest: include|exclude|split, or G/H in the spec) that are impossible or
// unsafe on this host are refused with the quirk and its source. `auto` never refuses for
// safety: it picks the best safe semantics (split where the CPU can, host-only where not) and
// says why. Rules that depend on the kernel's answer are left to the open ladder.
#include <linux/perf_event.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/agent_config.h"
#include "policy/event_spec.h"
#include "policy/host_model.h"
#include "policy/quirk_table.h"

namespace kvmprof {

enum class DecisionStatus { kOk, kDegraded, kRefused, kUnsupported };

struct PlannedCounter {
  std::string mode;  // what it counts: "all", "host" or "guest"
  std::string pmu;   // "cpu", "cpu_core", ...; "" for software events and tracepoints
  perf_event_attr attr{};
};

struct Decision {
  std::string event;                // the spec as written canonically, e.g. "cycles:p"
  GuestMode requested = GuestMode::kAuto;  // after the spec's G/H modifiers
  bool explicit_request = false;
  DecisionStatus status = DecisionStatus::kOk;
  std::string semantics;  // "all", "host", "guest" or "split"; empty when not opened
  std::vector<PlannedCounter> counters;
  std::string reason;                // for operators: what happens and why
  std::vector<std::string> sources;  // "quirk-id: source" for every quirk that applied
  unsigned precise = 0;
  // Permissions for the open ladder; it never widens an explicit request.
  bool may_drop_exclude_bits = false;  // EINVAL on exclude bits -> count all
  bool may_lower_precise = false;      // EOPNOTSUPP on precise -> lower it (P and auto)
};

Decision decide(const EventSpec& spec, GuestMode requested, const HostModel& host, const QuirkTable& quirks);

std::string_view to_string(DecisionStatus status);

// Precise events are sampling events (the kernel refuses precise counting events with EINVAL,
// arch/x86/events/core.c x86_pmu_hw_config); they sample at perf record's default rate.
inline constexpr uint64_t kDefaultSampleFreq = 4000;

}  // namespace kvmprof
