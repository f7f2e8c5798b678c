#include "policy/event_names.h"

#include <linux/perf_event.h>

#include <array>
#include <string>

namespace kvmprof {
namespace {

struct Alias {
  std::string_view name;
  std::string_view canonical;
  uint32_t type;
  uint64_t config;
};

// As perf names them: tools/perf/util/parse-events.c event_symbols_sw / event_symbols_hw.
constexpr std::array<Alias, 30> kNames{{
    {"task-clock", "task-clock", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK},
    {"cpu-clock", "cpu-clock", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK},
    {"context-switches", "context-switches", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CONTEXT_SWITCHES},
    {"cs", "context-switches", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CONTEXT_SWITCHES},
    {"cpu-migrations", "cpu-migrations", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_MIGRATIONS},
    {"migrations", "cpu-migrations", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_MIGRATIONS},
    {"page-faults", "page-faults", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS},
    {"faults", "page-faults", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS},
    {"minor-faults", "minor-faults", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS_MIN},
    {"major-faults", "major-faults", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS_MAJ},
    {"alignment-faults", "alignment-faults", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_ALIGNMENT_FAULTS},
    {"emulation-faults", "emulation-faults", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_EMULATION_FAULTS},
    {"dummy", "dummy", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_DUMMY},
    {"cgroup-switches", "cgroup-switches", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CGROUP_SWITCHES},
    {"cycles", "cycles", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES},
    {"cpu-cycles", "cycles", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES},
    {"instructions", "instructions", PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS},
    {"cache-references", "cache-references", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CACHE_REFERENCES},
    {"cache-misses", "cache-misses", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CACHE_MISSES},
    {"branches", "branches", PERF_TYPE_HARDWARE, PERF_COUNT_HW_BRANCH_INSTRUCTIONS},
    {"branch-instructions", "branches", PERF_TYPE_HARDWARE, PERF_COUNT_HW_BRANCH_INSTRUCTIONS},
    {"branch-misses", "branch-misses", PERF_TYPE_HARDWARE, PERF_COUNT_HW_BRANCH_MISSES},
    {"bus-cycles", "bus-cycles", PERF_TYPE_HARDWARE, PERF_COUNT_HW_BUS_CYCLES},
    {"stalled-cycles-frontend", "stalled-cycles-frontend", PERF_TYPE_HARDWARE,
     PERF_COUNT_HW_STALLED_CYCLES_FRONTEND},
    {"idle-cycles-frontend", "stalled-cycles-frontend", PERF_TYPE_HARDWARE,
     PERF_COUNT_HW_STALLED_CYCLES_FRONTEND},
    {"stalled-cycles-backend", "stalled-cycles-backend", PERF_TYPE_HARDWARE,
     PERF_COUNT_HW_STALLED_CYCLES_BACKEND},
    {"idle-cycles-backend", "stalled-cycles-backend", PERF_TYPE_HARDWARE,
     PERF_COUNT_HW_STALLED_CYCLES_BACKEND},
    {"ref-cycles", "ref-cycles", PERF_TYPE_HARDWARE, PERF_COUNT_HW_REF_CPU_CYCLES},
    {"L1-dcache-loads", "L1-dcache-loads", PERF_TYPE_HW_CACHE, PERF_COUNT_HW_CACHE_L1D},
    {"L1-dcache-load-misses", "L1-dcache-load-misses", PERF_TYPE_HW_CACHE,
     PERF_COUNT_HW_CACHE_L1D | (uint64_t{PERF_COUNT_HW_CACHE_RESULT_MISS} << 16)},
}};

// Cache events beyond the two above: <cache>-<op>[-misses], perf's hw_cache table.
constexpr std::array<std::pair<std::string_view, uint64_t>, 7> kCaches{{
    {"L1-dcache", PERF_COUNT_HW_CACHE_L1D}, {"L1-icache", PERF_COUNT_HW_CACHE_L1I},
    {"LLC", PERF_COUNT_HW_CACHE_LL},        {"dTLB", PERF_COUNT_HW_CACHE_DTLB},
    {"iTLB", PERF_COUNT_HW_CACHE_ITLB},     {"branch", PERF_COUNT_HW_CACHE_BPU},
    {"node", PERF_COUNT_HW_CACHE_NODE},
}};
constexpr std::array<std::pair<std::string_view, uint64_t>, 6> kCacheOps{{
    {"loads", PERF_COUNT_HW_CACHE_OP_READ},
    {"load-misses", PERF_COUNT_HW_CACHE_OP_READ | (uint64_t{PERF_COUNT_HW_CACHE_RESULT_MISS} << 8)},
    {"stores", PERF_COUNT_HW_CACHE_OP_WRITE},
    {"store-misses", PERF_COUNT_HW_CACHE_OP_WRITE | (uint64_t{PERF_COUNT_HW_CACHE_RESULT_MISS} << 8)},
    {"prefetches", PERF_COUNT_HW_CACHE_OP_PREFETCH},
    {"prefetch-misses", PERF_COUNT_HW_CACHE_OP_PREFETCH | (uint64_t{PERF_COUNT_HW_CACHE_RESULT_MISS} << 8)},
}};

std::optional<NamedConfig> cache_event(std::string_view name) {
  for (const auto& [cache, id] : kCaches) {
    if (!name.starts_with(cache) || name.size() <= cache.size() + 1 || name[cache.size()] != '-') continue;
    std::string_view op = name.substr(cache.size() + 1);
    for (const auto& [op_name, op_bits] : kCacheOps) {
      if (op == op_name) return NamedConfig{name, PERF_TYPE_HW_CACHE, id | (op_bits << 8)};
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<NamedConfig> lookup_event_name(std::string_view name) {
  for (const auto& a : kNames) {
    if (a.name == name) return NamedConfig{a.canonical, a.type, a.config};
  }
  return cache_event(name);
}

std::string_view software_event_list() {
  return "task-clock, cpu-clock, context-switches, cpu-migrations, page-faults, minor-faults, "
         "major-faults, alignment-faults, emulation-faults, dummy, cgroup-switches";
}

}  // namespace kvmprof
