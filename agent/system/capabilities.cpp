#include "agent/system/capabilities.h"

#include "agent/system/log.h"

namespace kvmprof {
namespace {

constexpr int kCapSysAdmin = 21;  // also grants what CAP_PERFMON does (kernel perfmon_capable())

bool has(uint64_t effective, int bit) { return effective & (uint64_t{1} << bit); }

bool present(uint64_t effective, const NeededCapability& cap) {
  return has(effective, cap.bit) || (cap.bit == 38 && has(effective, kCapSysAdmin));
}

}  // namespace

const std::vector<NeededCapability>& needed_capabilities() {
  static const std::vector<NeededCapability> caps{
      {38, "CAP_PERFMON",
       "perf_event_open on QEMU's threads is refused (EACCES): every perf:* and sampling:* source is down, only "
       "procfs and libvirt sources are measured"},
      {19, "CAP_SYS_PTRACE",
       "QEMU's /proc/PID/maps and /proc/PID/root cannot be read: its frames in profiles stay addresses (and "
       "under ProtectProc= or hidepid the VMs' processes are not seen at all)"},
      {2, "CAP_DAC_READ_SEARCH", "tracefs (/sys/kernel/tracing, mode 0700) cannot be read: kvm:* tracepoints are unsupported"},
      {34, "CAP_SYSLOG", "/proc/kallsyms shows no addresses: host kernel frames in profiles stay addresses"},
  };
  return caps;
}

std::string capability_summary(uint64_t effective) {
  std::string out;
  for (const auto& cap : needed_capabilities()) {
    out += (out.empty() ? "" : ", ") + std::string(cap.name) + (present(effective, cap) ? " yes" : " no");
  }
  return out;
}

void log_capabilities(uint64_t effective) {
  log_info("capabilities: " + capability_summary(effective));
  for (const auto& cap : needed_capabilities()) {
    if (present(effective, cap)) continue;
    log_warning(std::string("without ") + cap.name + ": " + cap.without + "; grant it (AmbientCapabilities= in the unit) or run as root");
  }
}

}  // namespace kvmprof
