#include "tests/support/fake_kernel.h"

#include <sys/eventfd.h>

#include <cstring>

namespace kvmprof::testing {
namespace {

constexpr uint32_t kCorePmuType = 4;  // "cpu" / "cpu_core" in the fixtures
constexpr uint32_t kAtomPmuType = 10;
constexpr uint32_t kUncorePmuType = 14;
constexpr unsigned kIntelMaxPrecise = 3;
constexpr unsigned kAmdMaxPrecise = 2;

bool core_event(const perf_event_attr& a) {
  return a.type == PERF_TYPE_HARDWARE || a.type == PERF_TYPE_HW_CACHE || a.type == PERF_TYPE_RAW ||
         a.type == kCorePmuType || a.type == kAtomPmuType;
}
bool sampling(const perf_event_attr& a) { return a.freq || a.sample_period != 0; }
bool has_exclude_bits(const perf_event_attr& a) { return a.exclude_guest || a.exclude_host; }

Rule precise_limit(unsigned max, const char* source) {
  return {source, [max](const perf_event_attr& a) { return a.precise_ip > max ? EOPNOTSUPP : 0; }};
}

Rule precise_needs_sampling() {
  return {"arch/x86/events/core.c x86_pmu_hw_config(): precise events must be sampling events",
          [](const perf_event_attr& a) { return a.precise_ip && !sampling(a) ? EINVAL : 0; }};
}

Rule uncore_no_exclude() {
  return {"arch/x86/events/intel/uncore.c uncore_pmu_event_init(): exclude bits -> EINVAL (cadvisor#2640)",
          [](const perf_event_attr& a) { return a.type == kUncorePmuType && has_exclude_bits(a) ? EINVAL : 0; }};
}

}  // namespace

Result<Fd> FakeKernel::open(perf_event_attr& attr, pid_t, int, int group_fd) {
  for (const auto& rule : rules_) {
    if (int err = rule.errno_for(attr)) {
      calls.emplace_back(attr, err);
      errno = err;
      return system_error("perf_event_open (" + name_ + ": " + rule.source + ")");
    }
  }
  calls.emplace_back(attr, 0);
  Fd fd(::eventfd(0, EFD_CLOEXEC));
  open_[fd.get()] = attr;
  ids_[fd.get()] = next_id_++;
  members_[group_fd < 0 ? fd.get() : group_fd].push_back(fd.get());
  return fd;
}

Result<size_t> FakeKernel::read(const Fd& fd, std::span<std::byte> buf) {
  const auto& members = members_[fd.get()];
  std::vector<uint64_t> words{members.size(), enabled_ns, running_ns};
  for (int member : members) {
    words.push_back(count_for(open_[member]));
    words.push_back(ids_[member]);
  }
  size_t bytes = std::min(buf.size(), words.size() * sizeof(uint64_t));
  std::memcpy(buf.data(), words.data(), bytes);
  return bytes;
}

Result<uint64_t> FakeKernel::event_id(const Fd& fd) { return ids_.at(fd.get()); }

FakeKernel linux_3_1() {
  return FakeKernel("linux-3.1", {
      {"exclude_host/exclude_guest are reserved bits before commit a240f76165e6 (3.2): EINVAL",
       [](const perf_event_attr& a) { return has_exclude_bits(a) ? EINVAL : 0; }},
      precise_needs_sampling(),
  });
}

FakeKernel linux_3_6() {
  return FakeKernel("linux-3.6", {
      {"2012: precise_ip > 0 refused unless exclude_guest=1 (reverted by a706d965dcfd)",
       [](const perf_event_attr& a) { return a.precise_ip && !a.exclude_guest ? EOPNOTSUPP : 0; }},
      precise_limit(2, "arch/x86/kernel/cpu/perf_event.c x86_pmu_hw_config(): precise_ip > max -> EOPNOTSUPP"),
      precise_needs_sampling(),
  });
}

FakeKernel linux_6_1_intel() {
  FakeKernel k("linux-6.1-intel", {
      precise_limit(kIntelMaxPrecise, "6.1 arch/x86/events/core.c x86_pmu_hw_config(): precise_ip > max_precise"),
      precise_needs_sampling(),
      uncore_no_exclude(),
  });
  return k;
}

FakeKernel linux_6_1_amd_ibs() {
  return FakeKernel("linux-6.1-amd-ibs", {
      precise_limit(kAmdMaxPrecise, "6.1 arch/x86/events/amd/core.c: precise_ip > 2 -> EOPNOTSUPP"),
      {"6.1 arch/x86/events/amd/ibs.c: IBS has PERF_PMU_CAP_NO_EXCLUDE -> EINVAL on exclude bits",
       [](const perf_event_attr& a) { return a.precise_ip && has_exclude_bits(a) ? EINVAL : 0; }},
      precise_needs_sampling(),
  });
}

FakeKernel linux_7_mediated() {
  return FakeKernel("linux-7.2-mediated-vpmu", {
      {"7.2 kernel/events/core.c: while a mediated-vPMU VM exists, core events with exclude_guest=0 -> EOPNOTSUPP",
       [](const perf_event_attr& a) { return core_event(a) && !a.exclude_guest ? EOPNOTSUPP : 0; }},
      precise_limit(kIntelMaxPrecise, "7.2 arch/x86/events/core.c x86_pmu_hw_config()"),
      precise_needs_sampling(),
  });
}

FakeKernel linux_6_1_intel_hybrid() {
  return FakeKernel("linux-6.1-intel-hybrid", {
      {"6.1 include/uapi/linux/perf_event.h: extended type in config[63:32] must name a core PMU",
       [](const perf_event_attr& a) {
         uint64_t ext = a.config >> PERF_PMU_TYPE_SHIFT;
         bool generic = a.type == PERF_TYPE_HARDWARE || a.type == PERF_TYPE_HW_CACHE;
         return generic && ext != 0 && ext != kCorePmuType && ext != kAtomPmuType ? ENOENT : 0;
       }},
      precise_limit(kIntelMaxPrecise, "6.1 arch/x86/events/core.c x86_pmu_hw_config()"),
      precise_needs_sampling(),
  });
}

FakeKernel no_hardware_pmu() {
  return FakeKernel("no-hardware-pmu", {
      {"no core PMU registered (kernel/events/core.c perf_init_event): hardware events -> ENOENT",
       [](const perf_event_attr& a) { return a.type != PERF_TYPE_SOFTWARE && a.type != PERF_TYPE_TRACEPOINT ? ENOENT : 0; }},
  });
}

std::vector<FakeKernel> all_personalities() {
  return {linux_3_1(), linux_3_6(), linux_6_1_intel(), linux_6_1_amd_ibs(), linux_7_mediated(),
          linux_6_1_intel_hybrid(), no_hardware_pmu()};
}

}  // namespace kvmprof::testing
