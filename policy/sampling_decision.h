#pragma once
// Decisions for a policy's sampling event: the same decision engine and quirk table as counted
// events, then the sampling attrs. What differs from counting:
// - There is no split: one event per thread (per core type on hybrid CPUs) samples host and
//   guest together where that is safe, and each sample's misc bits say where it was taken.
//   Where guest-inclusive sampling is unsafe or silently empty (precise on Intel, the mediated
//   vPMU) `auto` samples the host only and says why; an explicit ask is refused.
// - Software events: exclude_guest only decides whether samples taken in the guest window are
//   tagged guest (kernels since 6.13), and exclude_host has no effect; the reason says so.
#include <linux/perf_event.h>

#include "policy/agent_config.h"
#include "policy/decision.h"

namespace kvmprof {

Decision decide_sampling(const SamplingConfig& sampling, const HostModel& host, const QuirkTable& quirks);

// The sampling fields of `attr` (sample_type, freq/period, callchain, sample_id_all, clock,
// watermark wakeups at half the ring).
void set_sampling_attrs(perf_event_attr& attr, const SamplingConfig& sampling);

}  // namespace kvmprof
