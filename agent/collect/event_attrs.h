#pragma once
// Turns the configured event specs into perf_event_attr values for this host. Tracepoint
// ids come from tracefs; an event that cannot be resolved stays listed with the reason.
#include <string>
#include <vector>

#include "agent/system/host_root.h"
#include "agent/system/perf_group.h"
#include "policy/event_spec.h"

namespace kvmprof {

struct CountedEvent {
  EventAttr attr;
  bool tracepoint = false;
  std::string unavailable;  // empty when the event can be opened
};

std::vector<CountedEvent> resolve_events(const HostRoot& root, const std::vector<EventSpec>& specs);

}  // namespace kvmprof
