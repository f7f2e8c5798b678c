#pragma once
// Event specs in perf's syntax:
//   software and generic hardware events by perf's names (task-clock, cycles, instructions),
//   cache events (L1-dcache-load-misses), raw events (r01c2), PMU terms
//   (cpu/event=0x3c,umask=0x0/), vendor names resolved by libpfm4 (INST_RETIRED.ANY_P) and
//   tracepoints (kvm:kvm_exit), each optionally followed by perf's modifiers u k h G H I p pp
//   ppp P (after ':' or, for PMU terms, after the closing '/').
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace kvmprof {

struct SoftwareEvent {
  uint64_t config = 0;  // PERF_COUNT_SW_*
};

struct TracepointEvent {
  std::string subsystem;  // "kvm"
  std::string name;       // "kvm_exit"
};

// Generic hardware, cache and raw events: they count on the core PMU(s).
struct CoreEvent {
  uint32_t type = 0;  // PERF_TYPE_HARDWARE, PERF_TYPE_HW_CACHE or PERF_TYPE_RAW
  uint64_t config = 0;
};

// pmu/term=value,.../: encoded through the PMU's sysfs format/ files.
struct PmuTermsEvent {
  std::string pmu;
  std::vector<std::pair<std::string, uint64_t>> terms;  // value 1 for a bare term
};

// A vendor event name, resolved through libpfm4 on the host.
struct NamedEvent {
  std::string name;
};

// perf's modifiers, with perf's rules (tools/perf/util/parse-events.c get_event_modifier):
// the first of u/k/h excludes all three and each re-includes its level; the first of G/H
// excludes guest and host and each re-includes its side. Unlike the perf tool, nothing here
// excludes the guest by default: that is the policy's `guest:` setting.
struct Modifiers {
  bool exclude_user = false;
  bool exclude_kernel = false;
  bool exclude_hv = false;
  bool exclude_idle = false;
  bool exclude_guest = false;
  bool exclude_host = false;
  bool guest_host_given = false;  // G or H was written: an explicit guest/host request
  unsigned precise = 0;           // p, pp, ppp
  bool precise_max = false;       // P: the highest precise level the host supports
};

struct EventSpec {
  std::string text;  // canonical spec, used as the metric label: "cycles:pp", "kvm:kvm_exit"
  std::variant<SoftwareEvent, TracepointEvent, CoreEvent, PmuTermsEvent, NamedEvent> kind;
  Modifiers mods;

  bool is_software_or_tracepoint() const { return kind.index() <= 1; }
};

struct EventSpecError {
  size_t column = 0;  // 0-based offset of the bad token in the spec
  std::string message;
};

std::variant<EventSpec, EventSpecError> parse_event_spec(std::string_view spec);

// Applies a modifier string ("ukp", "pG") to `mods`; returns the offset of a bad character.
std::variant<Modifiers, EventSpecError> parse_modifiers(std::string_view text, size_t offset);

}  // namespace kvmprof
