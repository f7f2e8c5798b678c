#pragma once
// Host limits (limits.max_series, max_counters, max_sampled_threads, max_ring_bytes), pure:
// what each policy may still use when the VMs it applies to would exceed them. Lowest priority
// degrades first (among equal priorities the later policy in the file): first its per-vCPU
// event series are aggregated per VM (max_series), then it loses counted events from the end
// of its list (max_counters); over a sampling limit it stops sampling.
//
// Hysteresis: a degradation in force is undone only when the host stays at or below 90% of
// every limit without it, so VMs starting and stopping around a limit do not open and close
// counters, or move series between per-vCPU and per-VM, on every change.
#include <algorithm>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "policy/agent_config.h"
#include "policy/series_estimate.h"

namespace kvmprof {

// One counted event of a policy.
struct EventDemand {
  size_t counters = 0;    // per vCPU thread
  size_t modes = 0;       // values it exports: 2 when split into host and guest
  bool hardware = false;  // on a hardware PMU: also enabled and running seconds
};

struct PolicyDemand {
  std::string name;
  int priority = 0;
  bool per_vm = false;              // aggregation as configured
  std::vector<EventDemand> events;  // each counted event, in list order
  size_t vcpus = 0;                 // vCPU threads of the VMs it applies to
  size_t vms = 0;
  size_t sampled_threads = 0;  // threads its sampling would put a ring on (0: no sampling)
  size_t ring_bytes = 0;       // of one ring
  SeriesEstimate sampling;     // the series its sampling exports
};

// What the limits took from a policy: the state that hysteresis keeps. A policy that never hit
// a limit has nothing taken, whatever its events (also before they are planned).
struct PolicyAllowance {
  bool forced_per_vm = false;  // aggregated per VM although configured per vCPU (max_series)
  size_t dropped = 0;          // counted events taken from the end of its list (max_counters)
  bool sampling_off = false;   // its sampling stopped (max_sampled_threads, max_ring_bytes)

  bool per_vm(const PolicyDemand& d) const { return d.per_vm || forced_per_vm; }
  size_t kept(const PolicyDemand& d) const { return d.events.size() - std::min(dropped, d.events.size()); }
};

using LimitOutcome = std::map<std::string, PolicyAllowance>;  // by policy name

// `demands` in file order (the default policy last); `previous` is the last outcome (empty at first).
LimitOutcome apply_limits(const std::vector<PolicyDemand>& demands, const Limits& limits, const LimitOutcome& previous);

// Estimated exported series of one policy's VMs (series_estimate.h) as the limits leave it.
size_t estimated_series(const PolicyDemand& demand, const PolicyAllowance& allowance);
size_t open_counters(const PolicyDemand& demand, const PolicyAllowance& allowance);
size_t sampled_threads(const PolicyDemand& demand, const PolicyAllowance& allowance);

}  // namespace kvmprof
