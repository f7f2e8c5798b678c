#pragma once
// How many series one VM exports, as the metrics reference in README.md lists them: a part per
// VM and a part per vCPU. max_series (limits.h) and check-config use it. Where the host decides
// what appears, it counts what a KVM host on x86 shows: the 3 CPU modes, KVM's exit total and its
// 9 exit reasons (Linux 6.1 arch/x86/kvm/x86.c kvm_vcpu_stats_desc: io, mmio, signal, irq_window,
// nmi_window, halt, request_irq, irq and notify_window `*_exits`), and the sample modes a sampled
// thread can have.
#include <cstddef>
#include <string>

#include "policy/agent_config.h"

namespace kvmprof {

// kvmprof_vm_info, kvmprof_vm_threads_mapped, kvmprof_vm_emulator_cpu_seconds_total (host_kernel, host_user).
inline constexpr size_t kSeriesPerVm = 4;
// kvmprof_vcpu_cpu_seconds_total (guest, host_kernel, host_user), kvmprof_vcpu_wait_seconds_total,
// kvmprof_vcpu_exits_total (all and 9 reasons).
inline constexpr size_t kSeriesPerVcpu = 14;

struct SeriesEstimate {
  size_t per_vm = 0;
  size_t per_vcpu = 0;

  size_t for_vm(size_t vcpus) const { return per_vm + per_vcpu * vcpus; }
  SeriesEstimate& operator+=(const SeriesEstimate& o) {
    per_vm += o.per_vm;
    per_vcpu += o.per_vcpu;
    return *this;
  }
};

// One counted event: a value per mode it counts in (2 when split into host and guest), per vCPU
// or per VM when aggregated. Hardware counters add their enabled and running seconds per vCPU:
// the PMU multiplexes them. Software events and tracepoints always run while enabled
// (kernel/events/core.c: their pmu->add never fails), so those two series would say nothing.
SeriesEstimate event_series(size_t modes, bool hardware, bool per_vm);

// Sampling: per vCPU its sample modes (host_kernel, host_user, and guest_kernel, guest_user
// unless the guest is excluded); per VM samples lost by 3 reasons, throttles and, with `threads:
// all`, the emulator threads' host modes.
SeriesEstimate sampling_series(GuestMode guest, SampleThreads threads);

// Everything a VM under `policy` exports, from the config alone: a split event counts two modes.
SeriesEstimate estimate_series(const Policy& policy);

// check-config's lines: each policy's estimate, e.g. "  default: about 84 per VM of 4 vCPUs
// (4 + 20 per vCPU)".
std::string describe_series(const AgentConfig& config);

}  // namespace kvmprof
