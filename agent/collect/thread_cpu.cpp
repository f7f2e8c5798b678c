#include "agent/collect/thread_cpu.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace kvmprof {
namespace {

// Ticks and schedstat are read at slightly different moments and ticks are 10 ms coarse at
// USER_HZ 100: allow 3 ticks plus 10% before calling them inconsistent.
constexpr uint64_t kToleranceTicks = 3;
constexpr double kToleranceShare = 0.10;

uint64_t sum(const std::array<uint64_t, 3>& a) { return std::accumulate(a.begin(), a.end(), uint64_t{0}); }

}  // namespace

std::array<uint64_t, 3> tick_split(const TaskTicks& ticks) {
  uint64_t guest = std::min(ticks.guest_time, ticks.utime);
  return {guest, ticks.stime, ticks.utime - guest};
}

void ThreadCpu::update(const SchedStat& sched, const TaskTicks& ticks) {
  total_ns_ = std::max(total_ns_, sched.run_ns);
  wait_ns_ = std::max(wait_ns_, sched.wait_ns);
  if (trusted_ && !consistent(ticks)) trusted_ = false;
  if (trusted_) distribute(tick_split(ticks));
}

uint64_t ThreadCpu::unsplit_ns() const { return total_ns_ - sum(split_); }

bool ThreadCpu::consistent(const TaskTicks& ticks) const {
  double ticks_ns = static_cast<double>(ticks.utime + ticks.stime) * static_cast<double>(ns_per_tick_);
  double run_ns = static_cast<double>(total_ns_);
  double tolerance = static_cast<double>(kToleranceTicks * ns_per_tick_) + kToleranceShare * run_ns;
  return std::abs(ticks_ns - run_ns) <= tolerance;
}

// Moves the not yet attributed time into the modes: first towards each mode's target share
// (ticks_m / sum(ticks) of the total), the rest by share. Never lowers a mode.
void ThreadCpu::distribute(const std::array<uint64_t, 3>& ticks) {
  const uint64_t tick_sum = sum(ticks);
  const uint64_t pending = unsplit_ns();
  if (tick_sum == 0 || pending == 0) return;
  std::array<double, 3> share{}, want{};
  double want_sum = 0;
  for (size_t m = 0; m < 3; ++m) {
    share[m] = static_cast<double>(ticks[m]) / static_cast<double>(tick_sum);
    double target = share[m] * static_cast<double>(total_ns_);
    want[m] = std::max(0.0, target - static_cast<double>(split_[m]));
    want_sum += want[m];
  }
  const double p = static_cast<double>(pending);
  const double toward_target = std::min(p, want_sum);
  const double rest = p - toward_target;
  // Rounding leftovers go to the largest share, so the modes sum exactly to the total.
  const size_t largest = static_cast<size_t>(std::max_element(share.begin(), share.end()) - share.begin());
  std::array<uint64_t, 3> add{};
  uint64_t others = 0;
  for (size_t m = 0; m < 3; ++m) {
    if (m == largest) continue;
    double part = (want_sum > 0 ? want[m] / want_sum * toward_target : 0) + share[m] * rest;
    add[m] = std::min(static_cast<uint64_t>(part), pending - others);
    others += add[m];
  }
  add[largest] = pending - others;
  for (size_t m = 0; m < 3; ++m) split_[m] += add[m];
}

}  // namespace kvmprof
