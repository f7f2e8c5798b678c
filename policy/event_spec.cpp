#include "policy/event_spec.h"

#include <linux/perf_event.h>

#include <array>
#include <utility>

namespace kvmprof {
namespace {

struct NamedSoftwareEvent {
  std::string_view name;
  std::string_view canonical;
  uint64_t config;
};

// Names and aliases as in perf's tools/perf/util/parse-events.c event_symbols_sw.
constexpr std::array<NamedSoftwareEvent, 14> kSoftwareEvents{{
    {"task-clock", "task-clock", PERF_COUNT_SW_TASK_CLOCK},
    {"cpu-clock", "cpu-clock", PERF_COUNT_SW_CPU_CLOCK},
    {"context-switches", "context-switches", PERF_COUNT_SW_CONTEXT_SWITCHES},
    {"cs", "context-switches", PERF_COUNT_SW_CONTEXT_SWITCHES},
    {"cpu-migrations", "cpu-migrations", PERF_COUNT_SW_CPU_MIGRATIONS},
    {"migrations", "cpu-migrations", PERF_COUNT_SW_CPU_MIGRATIONS},
    {"page-faults", "page-faults", PERF_COUNT_SW_PAGE_FAULTS},
    {"faults", "page-faults", PERF_COUNT_SW_PAGE_FAULTS},
    {"minor-faults", "minor-faults", PERF_COUNT_SW_PAGE_FAULTS_MIN},
    {"major-faults", "major-faults", PERF_COUNT_SW_PAGE_FAULTS_MAJ},
    {"alignment-faults", "alignment-faults", PERF_COUNT_SW_ALIGNMENT_FAULTS},
    {"emulation-faults", "emulation-faults", PERF_COUNT_SW_EMULATION_FAULTS},
    {"dummy", "dummy", PERF_COUNT_SW_DUMMY},
    {"cgroup-switches", "cgroup-switches", PERF_COUNT_SW_CGROUP_SWITCHES},
}};

bool is_ident_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

// Returns the offset of the first character that is not allowed in a name, or npos.
size_t bad_char(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (!is_ident_char(s[i])) return i;
  }
  return std::string_view::npos;
}

std::variant<EventSpec, EventSpecError> parse_tracepoint(std::string_view spec, size_t colon) {
  std::string_view subsys = spec.substr(0, colon), name = spec.substr(colon + 1);
  if (subsys.empty()) return EventSpecError{0, "tracepoint needs a subsystem before ':'"};
  if (name.empty()) return EventSpecError{colon + 1, "tracepoint needs a name after ':'"};
  if (size_t b = bad_char(subsys); b != std::string_view::npos) {
    return EventSpecError{b, "unexpected character in tracepoint subsystem"};
  }
  if (size_t b = bad_char(name); b != std::string_view::npos) {
    return EventSpecError{colon + 1 + b, "unexpected character in tracepoint name"};
  }
  return EventSpec{std::string(spec), TracepointEvent{std::string(subsys), std::string(name)}};
}

}  // namespace

std::variant<EventSpec, EventSpecError> parse_event_spec(std::string_view spec) {
  if (spec.empty()) return EventSpecError{0, "empty event spec"};
  if (size_t colon = spec.find(':'); colon != std::string_view::npos) {
    return parse_tracepoint(spec, colon);
  }
  for (const auto& event : kSoftwareEvents) {
    if (event.name == spec) {
      return EventSpec{std::string(event.canonical), SoftwareEvent{event.config}};
    }
  }
  if (size_t b = bad_char(spec); b != std::string_view::npos) {
    return EventSpecError{b, "unexpected character in event name"};
  }
  return EventSpecError{0, "unknown event '" + std::string(spec) +
                               "'; known software events: " + known_software_events() +
                               "; tracepoints as subsys:name (hardware events are not supported yet)"};
}

std::string known_software_events() {
  std::string out;
  for (const auto& event : kSoftwareEvents) {
    if (event.name != event.canonical) continue;
    if (!out.empty()) out += ", ";
    out += event.name;
  }
  return out;
}

}  // namespace kvmprof
