#pragma once
// Event specs in perf's syntax. This version knows software events and tracepoints
// ("subsys:name"); hardware, cache, raw and PMU events come with the policy engine.
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace kvmprof {

struct SoftwareEvent {
  uint64_t config = 0;  // PERF_COUNT_SW_*
};

struct TracepointEvent {
  std::string subsystem;  // "kvm"
  std::string name;       // "kvm_exit"
};

struct EventSpec {
  std::string text;  // canonical name used in metric labels, e.g. "task-clock", "kvm:kvm_exit"
  std::variant<SoftwareEvent, TracepointEvent> kind;
};

struct EventSpecError {
  size_t column = 0;  // 0-based offset of the bad token in the spec
  std::string message;
};

// Parses one spec; on error returns an EventSpecError pointing at the bad token.
std::variant<EventSpec, EventSpecError> parse_event_spec(std::string_view spec);

// The software events perf knows by name, for help texts and error messages.
std::string known_software_events();

}  // namespace kvmprof
