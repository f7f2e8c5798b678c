#pragma once
// perf's symbolic event names: software, generic hardware and cache events.
#include <cstdint>
#include <optional>
#include <string_view>

namespace kvmprof {

struct NamedConfig {
  std::string_view canonical;  // the name used in labels ("context-switches" for "cs")
  uint32_t type;               // PERF_TYPE_SOFTWARE, PERF_TYPE_HARDWARE or PERF_TYPE_HW_CACHE
  uint64_t config;
};

std::optional<NamedConfig> lookup_event_name(std::string_view name);
std::string_view software_event_list();

}  // namespace kvmprof
