#pragma once
// Reads the HostModel: /proc/cpuinfo, every PMU under /sys/bus/event_source/devices, KVM
// module parameters and perf_event_paranoid, all under the host root; the agent's own
// capabilities; and kernel features found by probing perf_event_open (never versions).
#include "agent/system/host_root.h"
#include "agent/system/perf_backend.h"
#include "agent/system/perf_ring.h"
#include "policy/host_model.h"

namespace kvmprof {

HostModel probe_host(const HostRoot& root);

// Probes attr size negotiation and exclude-bit support with a software event on this thread.
KernelFeatures probe_kernel(PerfBackend& perf);

// What a sampling ring offers on this kernel: a cpu-clock sampling event opened on this thread
// through the ladder (which says whether use_clockid is taken) and its ring's mmap page.
struct RingProbe {
  std::optional<RingCaps> caps;    // absent when the event or the mapping was refused
  std::optional<bool> use_clockid;  // CLOCK_MONOTONIC sample times
  std::string error;
};
RingProbe probe_ring(PerfBackend& perf, const HostModel& host);

// CapEff bits from a /proc/PID/status text.
uint64_t parse_cap_eff(std::string_view status);

}  // namespace kvmprof
