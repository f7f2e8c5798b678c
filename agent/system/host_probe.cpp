#include "agent/system/host_probe.h"

#include "agent/system/open_ladder.h"
#include "policy/sampling_decision.h"

#include <charconv>
#include <string>

namespace kvmprof {
namespace {

constexpr const char* kPmuDir = "/sys/bus/event_source/devices";
constexpr int kCapSysAdmin = 21;
constexpr int kCapPerfmon = 38;

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::optional<unsigned> read_uint(const HostRoot& root, const std::string& path) {
  auto text = root.read_file(path);
  if (!text.ok()) return std::nullopt;
  std::string s = trimmed(*text);
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::map<std::string, std::string> read_dir_files(const HostRoot& root, const std::string& dir) {
  std::map<std::string, std::string> out;
  auto names = root.list_dir(dir);
  if (!names.ok()) return out;
  for (const auto& name : *names) {
    if (auto text = root.read_file(dir + "/" + name); text.ok()) out[name] = trimmed(*text);
  }
  return out;
}

PmuInfo read_pmu(const HostRoot& root, const std::string& name) {
  std::string dir = std::string(kPmuDir) + "/" + name;
  PmuInfo pmu;
  pmu.name = name;
  pmu.type = read_uint(root, dir + "/type").value_or(0);
  pmu.max_precise = read_uint(root, dir + "/caps/max_precise");
  if (auto text = root.read_file(dir + "/caps/pmu_name"); text.ok()) pmu.pmu_name = trimmed(*text);
  pmu.format = read_dir_files(root, dir + "/format");
  pmu.events = read_dir_files(root, dir + "/events");
  return pmu;
}

std::optional<bool> read_param(const HostRoot& root, const std::string& module, const char* param) {
  auto text = root.read_file("/sys/module/" + module + "/parameters/" + param);
  return text.ok() ? parse_param_bool(*text) : std::nullopt;
}

KvmParams read_kvm(const HostRoot& root) {
  KvmParams kvm;
  for (const char* module : {"kvm_intel", "kvm_amd"}) {
    if (root.list_dir(std::string("/sys/module/") + module).ok()) kvm.vendor_module = module;
  }
  kvm.enable_pmu = read_param(root, "kvm", "enable_pmu");
  if (!kvm.vendor_module.empty()) {
    kvm.enable_mediated_pmu = read_param(root, kvm.vendor_module, "enable_mediated_pmu");
    kvm.sev = read_param(root, kvm.vendor_module, "sev");
  }
  return kvm;
}

}  // namespace

uint64_t parse_cap_eff(std::string_view status) {
  size_t at = status.find("CapEff:");
  if (at == std::string_view::npos) return 0;
  std::string_view rest = status.substr(at + 7);
  while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
  uint64_t caps = 0;
  std::from_chars(rest.data(), rest.data() + rest.size(), caps, 16);
  return caps;
}

HostModel probe_host(const HostRoot& root) {
  HostModel host;
  if (auto cpuinfo = root.read_file("/proc/cpuinfo"); cpuinfo.ok()) host.cpu = parse_cpuinfo(*cpuinfo);
  if (auto names = root.list_dir(kPmuDir); names.ok()) {
    for (const auto& name : *names) host.pmus.push_back(read_pmu(root, name));
  }
  host.kvm = read_kvm(root);
  auto paranoid = root.read_file("/proc/sys/kernel/perf_event_paranoid");
  if (paranoid.ok()) host.perf_event_paranoid = std::atoi(paranoid->c_str());
  auto rate = root.read_file("/proc/sys/kernel/perf_event_max_sample_rate");
  if (rate.ok() && std::atoll(rate->c_str()) > 0) host.max_sample_rate = static_cast<uint64_t>(std::atoll(rate->c_str()));
  // Capabilities are the agent's own, whatever the host root.
  if (auto status = read_whole_file("/proc/self/status"); status.ok()) {
    uint64_t caps = parse_cap_eff(*status);
    host.cap_sys_admin = caps & (uint64_t{1} << kCapSysAdmin);
    host.cap_perfmon = caps & (uint64_t{1} << kCapPerfmon);
  }
  return host;
}

KernelFeatures probe_kernel(PerfBackend& perf) {
  KernelFeatures features;
  perf_event_attr attr{};
  attr.type = PERF_TYPE_SOFTWARE;
  attr.config = PERF_COUNT_SW_DUMMY;
  attr.exclude_kernel = 1;  // allowed at any paranoid level
  attr.size = sizeof(attr);
  auto fd = perf.open(attr, 0, -1, -1);
  if (!fd.ok() && fd.error().err == E2BIG) {
    features.attr_size = attr.size;  // the kernel wrote its own size
    fd = perf.open(attr, 0, -1, -1);
  } else if (fd.ok()) {
    features.attr_size = static_cast<uint32_t>(sizeof(attr));
  }
  if (!fd.ok()) return features;
  attr.exclude_guest = 1;  // reserved bit before 3.2: EINVAL (commit a240f76165e6)
  auto with_bits = perf.open(attr, 0, -1, -1);
  features.exclude_guest_bits = with_bits.ok() || with_bits.error().err != EINVAL;
  return features;
}

RingProbe probe_ring(PerfBackend& perf, const HostModel& host) {
  SamplingConfig s;
  s.event = PolicyEvent{std::get<EventSpec>(parse_event_spec("cpu-clock")), GuestMode::kAuto, {}};
  s.buffer_pages = 1;
  OpenedDecision opened = open_decision(perf, decide_sampling(s, host, builtin_quirks()), 0, -1, -1, host);
  RingProbe out;
  if (opened.counters.empty()) {
    out.error = "sampling event refused: " + opened.reason;
    return out;
  }
  out.use_clockid = opened.counters[0].attr.use_clockid != 0;
  auto mapping = perf.map_ring(opened.counters[0].fd, 1);
  if (!mapping.ok()) {
    out.error = mapping.error().message();
    return out;
  }
  out.caps = read_caps(*reinterpret_cast<const perf_event_mmap_page*>(mapping->bytes().data()));
  return out;
}

}  // namespace kvmprof
