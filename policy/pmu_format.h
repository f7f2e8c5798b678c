#pragma once
// Encodes pmu/term=value,.../ through the PMU's sysfs format/ files, as perf does
// (tools/perf/util/pmu.c pmu_config_term): "config:0-7,21" places a value's bits there.
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "policy/host_model.h"

namespace kvmprof {

struct EncodedConfig {
  std::array<uint64_t, 3> config{};  // config, config1, config2
};

std::variant<EncodedConfig, std::string> encode_pmu_terms(
    const PmuInfo& pmu, const std::vector<std::pair<std::string, uint64_t>>& terms);

}  // namespace kvmprof
