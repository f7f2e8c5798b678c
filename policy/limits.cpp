#include "policy/limits.h"

#include <algorithm>
#include <numeric>

namespace kvmprof {
namespace {

constexpr size_t kSeriesPerVcpu = 5;  // cpu modes + wait + a few exits: not reducible
constexpr double kRestoreBelow = 0.9;   // hysteresis: undo a degradation only at or below 90%

struct State {
  const std::vector<PolicyDemand>& demands;
  const Limits& limits;
  std::vector<PolicyAllowance> allowed;  // parallel to demands

  size_t series() const {
    size_t n = 0;
    for (size_t i = 0; i < demands.size(); ++i) n += estimated_series(demands[i], allowed[i]);
    return n;
  }
  size_t counters() const {
    size_t n = 0;
    for (size_t i = 0; i < demands.size(); ++i) n += open_counters(demands[i], allowed[i]);
    return n;
  }
  bool within(double share) const {
    auto ok = [share](size_t used, size_t limit) { return limit == 0 || static_cast<double>(used) <= share * static_cast<double>(limit); };
    return ok(series(), limits.max_series) && ok(counters(), limits.max_counters);
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
// host stays within 90% of its limits.
void restore(State& s, const std::vector<size_t>& order) {
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const PolicyDemand& d = s.demands[*it];
    PolicyAllowance& a = s.allowed[*it];
    while (a.events < d.counters.size()) {
      ++a.events;
      if (!s.within(kRestoreBelow)) {
        --a.events;
        return;
      }
    }
    if (a.per_vm && !d.per_vm) {
      a.per_vm = false;
      if (!s.within(kRestoreBelow)) {
        a.per_vm = true;
        return;
      }
    }
  }
}

void degrade(State& s, const std::vector<size_t>& order) {
  for (size_t i : order) {
    if (s.limits.max_series == 0 || s.series() <= s.limits.max_series) break;
    if (s.demands[i].vcpus > 0) s.allowed[i].per_vm = true;
  }
  for (size_t i : order) {
    while (s.limits.max_counters > 0 && s.counters() > s.limits.max_counters && s.demands[i].vcpus > 0 &&
           s.allowed[i].events > 0) {
      --s.allowed[i].events;
    }
  }
}

}  // namespace

size_t open_counters(const PolicyDemand& d, const PolicyAllowance& a) {
  size_t n = std::accumulate(d.counters.begin(), d.counters.begin() + static_cast<long>(std::min(a.events, d.counters.size())), size_t{0});
  return n * d.vcpus;
}

size_t estimated_series(const PolicyDemand& d, const PolicyAllowance& a) {
  size_t per_counter = a.per_vm ? d.vms : d.vcpus * 3;
  return d.vcpus * kSeriesPerVcpu + per_counter * (d.vcpus ? open_counters(d, a) / d.vcpus : 0);
}

LimitOutcome apply_limits(const std::vector<PolicyDemand>& demands, const Limits& limits, const LimitOutcome& previous) {
  State s{demands, limits, {}};
  for (const auto& d : demands) {
    PolicyAllowance a{d.per_vm, d.counters.size()};
    if (auto p = previous.find(d.name); p != previous.end()) {  // degradations in force stay for now
      a.per_vm = a.per_vm || p->second.per_vm;
      a.events = std::min(a.events, p->second.events);
    }
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
