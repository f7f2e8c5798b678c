#pragma once
// What the agent counts on every vCPU thread: each configured event decided for this host by
// the policy engine, then opened once at start on the agent's own thread through the open
// ladder, so every vCPU thread later gets the attrs the kernel actually accepts.
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "agent/system/host_root.h"
#include "agent/system/perf_group.h"
#include "policy/decision.h"

namespace kvmprof {

struct PlannedEvent {
  std::string event;  // spec text, the metric's `event` label
  GuestMode guest = GuestMode::kAuto;
  unsigned precise = 0;
  DecisionStatus status = DecisionStatus::kOk;
  std::string semantics;  // what the counters count: "all", "host", "guest", "split"
  std::string reason;
  bool tracepoint = false;
  std::vector<EventAttr> counters;  // empty when the event is not counted
  std::vector<std::string> fallbacks;  // open-ladder steps taken (LadderStep::code)
};

// One event decided for this host and opened once through the ladder (logged).
PlannedEvent plan_event(const HostRoot& root, PerfBackend& perf, const PolicyEvent& event, const HostModel& host,
                        const QuirkTable& quirks);
std::vector<PlannedEvent> plan_events(const HostRoot& root, PerfBackend& perf, const std::vector<PolicyEvent>& events,
                                      const HostModel& host, const QuirkTable& quirks);

// A policy's sampling, decided and probed like a counted event: `event.counters` holds one
// sampling attr per PMU (one on most hosts), empty when nothing is sampled.
struct SamplingPlan {
  PlannedEvent event;
  SampleThreads threads = SampleThreads::kAll;
  size_t data_pages = 0;  // per ring, a power of two
  std::string guest_kallsyms;  // for profiles: names guest kernel frames

  size_t ring_bytes() const { return (1 + data_pages) * kRingPageBytes * event.counters.size(); }
  // Equal keys open identical rings.
  std::string key() const;
};

SamplingPlan plan_sampling(const HostRoot& root, PerfBackend& perf, const SamplingConfig& sampling, const HostModel& host,
                           const QuirkTable& quirks);

// One policy ready to count: its events, their counters as group slots, and the groups.
struct PolicyPlan {
  std::string name;
  Selector match;
  Aggregation aggregation = Aggregation::kPerVcpu;
  int priority = 0;
  std::optional<std::chrono::milliseconds> interval;  // the policy's own; else the agent's
  std::vector<PlannedEvent> events;
  std::vector<EventAttr> slots;             // every counter of every counted event
  std::vector<std::vector<size_t>> groups;  // slot indices per perf group (one read each)
  std::optional<SamplingPlan> sampling;     // none: its VMs are not sampled

  // Equal keys open identical counters: a reload keeps such VMs' counters untouched.
  std::string key() const;
  // Counters, export and sampling all the same.
  bool same_as(const PolicyPlan& other) const;
};

PolicyPlan make_policy_plan(const Policy& policy, std::vector<PlannedEvent> events, size_t max_group_size);

// Software events and tracepoints share one group; hardware counters go in groups per PMU of
// at most `max_group_size` (the PMU's general-purpose counters), an event's host/guest pair together.
std::vector<std::vector<size_t>> partition_slots(const std::vector<EventAttr>& slots, size_t max_group_size);

// The tracepoint's id from tracefs under the root, or why it is not available.
std::variant<uint64_t, std::string> tracepoint_id(const HostRoot& root, const TracepointEvent& tp);

}  // namespace kvmprof
