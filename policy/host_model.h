#pragma once
// HostModel: what the decision engine knows about a host. Plain data, filled by the agent's
// host probe (from procfs/sysfs under a host root, and from probing the kernel) or by tests.
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace kvmprof {

enum class Vendor { kUnknown, kIntel, kAmd };

struct CpuId {
  Vendor vendor = Vendor::kUnknown;
  std::string vendor_id;  // "GenuineIntel", "AuthenticAMD"
  unsigned family = 0;
  unsigned model = 0;
  unsigned stepping = 0;
  std::optional<uint64_t> microcode;  // absent in some VMs
  std::set<std::string> flags;        // "vmx", "svm", "pdcm", "sev", "hypervisor", ...
  std::string model_name;
};

// One PMU under /sys/bus/event_source/devices.
struct PmuInfo {
  std::string name;  // "cpu", "cpu_core", "cpu_atom", "ibs_op", "uncore_imc_0", ...
  uint32_t type = 0;
  std::optional<unsigned> max_precise;      // caps/max_precise
  std::string pmu_name;                     // caps/pmu_name, e.g. "skylake"
  std::map<std::string, std::string> format;  // format/event -> "config:0-7"
  std::map<std::string, std::string> events;  // events/cpu-cycles -> "event=0x3c"
};

// KVM module parameters (/sys/module/kvm*/parameters); nullopt where the file is absent.
struct KvmParams {
  std::string vendor_module;  // "kvm_intel", "kvm_amd", or "" when neither is loaded
  std::optional<bool> enable_pmu;
  std::optional<bool> enable_mediated_pmu;
  std::optional<bool> sev;
};

// Kernel behaviour found by probing perf_event_open (never by version numbers).
struct KernelFeatures {
  std::optional<uint32_t> attr_size;       // size the kernel accepts (E2BIG negotiation)
  std::optional<bool> exclude_guest_bits;  // accepts exclude_guest/exclude_host at all
};

struct HostModel {
  CpuId cpu;
  std::vector<PmuInfo> pmus;
  KvmParams kvm;
  int perf_event_paranoid = 2;
  // kernel.perf_event_max_sample_rate: higher sample_freq is EINVAL. The kernel lowers it at
  // run time when sampling interrupts take too long (kernel/events/core.c perf_sample_event_took).
  std::optional<uint64_t> max_sample_rate;
  bool cap_perfmon = false;
  bool cap_sys_admin = false;
  KernelFeatures kernel;

  const PmuInfo* pmu(std::string_view name) const;
  // The core PMUs: "cpu", or "cpu_core"/"cpu_atom"/"cpu_lowpower" on hybrid CPUs.
  std::vector<const PmuInfo*> core_pmus() const;
  bool virtualization() const { return cpu.flags.contains("vmx") || cpu.flags.contains("svm"); }
};

// "GenuineIntel", family 6, model 85, ... from the first processor of /proc/cpuinfo.
CpuId parse_cpuinfo(std::string_view text);

// A sysfs boolean module parameter: "Y"/"N" or "1"/"0".
std::optional<bool> parse_param_bool(std::string_view text);

// The PMU's kind, from its name: core counters, AMD IBS, or everything else ("uncore").
enum class PmuKind { kCore, kIbs, kUncore, kSoftware };
PmuKind pmu_kind(std::string_view name);


}  // namespace kvmprof
