#include "policy/limits.h"

#include <algorithm>
#include <numeric>

namespace kvmprof {
namespace {

constexpr double kRestoreBelow = 0.9;   // hysteresis: undo a degradation only at or below 90%

struct State {
  const std::vector<PolicyDemand>& demands;
  const Limits& limits;
  std::vector<PolicyAllowance> allowed;  // parallel to demands

  // The host's total of `of(demand, allowance)` over every policy.
  template <class F>
  size_t total(F of) const {
    size_t n = 0;
    for (size_t i = 0; i < demands.size(); ++i) n += of(demands[i], allowed[i]);
    return n;
  }
  size_t series() const { return total(estimated_series); }
  size_t counters() const { return total(open_counters); }
  size_t threads() const { return total(sampled_threads); }
  size_t ring_bytes() const {
    return total([](const PolicyDemand& d, const PolicyAllowance& a) { return sampled_threads(d, a) * d.ring_bytes; });
  }
  bool sampling_within(double share) const {
    return ok(threads(), limits.max_sampled_threads, share) && ok(ring_bytes(), limits.max_ring_bytes, share);
  }
  bool counting_within(double share) const {
    return ok(series(), limits.max_series, share) && ok(counters(), limits.max_counters, share);
  }
  static bool ok(size_t used, size_t limit, double share) {
    return limit == 0 || static_cast<double>(used) <= share * static_cast<double>(limit);
  }
};

// Lowest priority first; among equals the later policy first.
std::vector<size_t> degrade_order(const std::vector<PolicyDemand>& demands) {
  std::vector<size_t> order(demands.size());
  std::iota(order.rbegin(), order.rend(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return demands[a].priority < demands[b].priority; });
  return order;
}

// Undoes degradations from `previous`, highest priority first, one step at a time, while the
// host stays within 90% of the limits the step affects: sampling steps against the sampling
// limits, counting steps against series and counters. Each kind stops at its first step that
// does not fit, so a lower priority is never restored before a higher one.
void restore(State& s, const std::vector<size_t>& order) {
  bool sampling = true, counting = true;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    PolicyAllowance& a = s.allowed[*it];
    if (sampling && a.sampling_off) {
      a.sampling_off = false;
      if (!s.sampling_within(kRestoreBelow)) a.sampling_off = true, sampling = false;
    }
    while (counting && a.dropped > 0) {
      --a.dropped;
      if (!s.counting_within(kRestoreBelow)) ++a.dropped, counting = false;
    }
    if (counting && a.forced_per_vm) {
      a.forced_per_vm = false;
      if (!s.counting_within(kRestoreBelow)) a.forced_per_vm = true, counting = false;
    }
  }
}

void degrade(State& s, const std::vector<size_t>& order) {
  for (size_t i : order) {
    if (s.sampling_within(1.0)) break;
    if (s.demands[i].sampled_threads > 0) s.allowed[i].sampling_off = true;
  }
  for (size_t i : order) {
    if (s.limits.max_series == 0 || s.series() <= s.limits.max_series) break;
    const PolicyDemand& d = s.demands[i];
    if (d.vcpus > 0 && !d.per_vm) s.allowed[i].forced_per_vm = true;
  }
  for (size_t i : order) {
    const PolicyDemand& d = s.demands[i];
    while (s.limits.max_counters > 0 && s.counters() > s.limits.max_counters && d.vcpus > 0 &&
           s.allowed[i].kept(d) > 0) {
      ++s.allowed[i].dropped;
    }
  }
}

}  // namespace

size_t open_counters(const PolicyDemand& d, const PolicyAllowance& a) {
  size_t n = 0;
  for (size_t i = 0; i < a.kept(d); ++i) n += d.events[i].counters;
  return n * d.vcpus;
}

size_t sampled_threads(const PolicyDemand& d, const PolicyAllowance& a) { return a.sampling_off ? 0 : d.sampled_threads; }

size_t estimated_series(const PolicyDemand& d, const PolicyAllowance& a) {
  SeriesEstimate s{kSeriesPerVm, kSeriesPerVcpu};
  for (size_t i = 0; i < a.kept(d); ++i) s += event_series(d.events[i].modes, d.events[i].hardware, a.per_vm(d));
  if (!a.sampling_off) s += d.sampling;
  return s.per_vm * d.vms + s.per_vcpu * d.vcpus;
}

LimitOutcome apply_limits(const std::vector<PolicyDemand>& demands, const Limits& limits, const LimitOutcome& previous) {
  State s{demands, limits, {}};
  for (const auto& d : demands) {  // what the limits took before stays taken for now
    auto p = previous.find(d.name);
    PolicyAllowance a = p == previous.end() ? PolicyAllowance{} : p->second;
    a.forced_per_vm = a.forced_per_vm && !d.per_vm;
    a.dropped = std::min(a.dropped, d.events.size());
    a.sampling_off = a.sampling_off && d.sampled_threads > 0;
    s.allowed.push_back(a);
  }
  auto order = degrade_order(demands);
  restore(s, order);
  degrade(s, order);
  LimitOutcome out;
  for (size_t i = 0; i < demands.size(); ++i) out[demands[i].name] = s.allowed[i];
  return out;
}

}  // namespace kvmprof
