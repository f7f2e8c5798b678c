// Host limits as a pure function: who degrades first, how far, and when it is undone.
#include "policy/limits.h"

#include <gtest/gtest.h>

using namespace kvmprof;

namespace {

// Hardware events with a counter per mode, counters per vCPU thread as given: per VM 4 series and
// per vCPU 14, plus per counter 3 per vCPU (value, enabled, running) or 1 per VM when aggregated.
PolicyDemand demand(std::string name, int priority, std::vector<size_t> counters, size_t vcpus, size_t vms = 1) {
  std::vector<EventDemand> events;
  for (size_t c : counters) events.push_back({c, c, true});
  return PolicyDemand{std::move(name), priority, false, std::move(events), vcpus, vms, 0, 0, {}};
}

Limits limits(size_t max_series, size_t max_counters) {
  Limits l;
  l.max_series = max_series;
  l.max_counters = max_counters;
  return l;
}

}  // namespace

TEST(Limits, WithoutLimitsNothingIsTaken) {
  auto out = apply_limits({demand("a", 0, {2, 2}, 8)}, limits(0, 0), {});
  EXPECT_FALSE(out["a"].forced_per_vm);
  EXPECT_EQ(out["a"].dropped, 0u);
}

TEST(Limits, LowestPriorityIsAggregatedFirstThenLosesEventsFromTheEnd) {
  // important: 1 vCPU, one split event (2 counters): 4 + 14 + 6 = 24 series, 2 counters.
  // default: 1 vCPU, two split events: 4 + 14 + 12 = 30 series per vCPU, 22 aggregated; 4 counters.
  std::vector<PolicyDemand> d{demand("important", 10, {2}, 1), demand("default", 0, {2, 2}, 1)};
  auto out = apply_limits(d, limits(46, 4), {});
  EXPECT_FALSE(out["important"].forced_per_vm);
  EXPECT_EQ(out["important"].dropped, 0u);
  EXPECT_TRUE(out["default"].forced_per_vm);
  EXPECT_EQ(out["default"].dropped, 1u);  // 2 + 2 counters fit 4
}

TEST(Limits, AmongEqualPrioritiesTheLaterPolicyDegradesFirst) {
  std::vector<PolicyDemand> d{demand("first", 0, {1, 1}, 1), demand("second", 0, {1, 1}, 1)};
  auto out = apply_limits(d, limits(0, 3), {});
  EXPECT_EQ(out["first"].dropped, 0u);
  EXPECT_EQ(out["second"].dropped, 1u);
}

TEST(Limits, ADegradationStaysUntilTheHostIsBelowNinetyPercentWithoutIt) {
  // 10 counters per vCPU thread, limit 100 counters.
  auto at = [](size_t vcpus, const LimitOutcome& previous) {
    return apply_limits({demand("p", 0, {5, 5}, vcpus)}, limits(0, 100), previous);
  };
  LimitOutcome out = at(11, {});  // 110 > 100: one event dropped (55)
  EXPECT_EQ(out["p"].dropped, 1u);
  out = at(10, out);  // 100 would fit the limit, but not 90%: stays degraded
  EXPECT_EQ(out["p"].dropped, 1u);
  out = at(11, out);  // back over: no change to open or close
  EXPECT_EQ(out["p"].dropped, 1u);
  out = at(9, out);  // 90 <= 90: restored
  EXPECT_EQ(out["p"].dropped, 0u);
  out = at(10, out);  // 100 fits: not degraded again
  EXPECT_EQ(out["p"].dropped, 0u);
}

TEST(Limits, PerVmAggregationHasTheSameHysteresis) {
  auto at = [](size_t vcpus, const LimitOutcome& previous) {
    // 4 + 17 series per vCPU; aggregated 4 + 14 per vCPU + 1
    return apply_limits({demand("p", 0, {1}, vcpus, 1)}, limits(180, 0), previous);
  };
  LimitOutcome out = at(11, {});  // 191 > 180
  EXPECT_TRUE(out["p"].forced_per_vm);
  out = at(10, out);  // 174 fits, above 162
  EXPECT_TRUE(out["p"].forced_per_vm);
  out = at(9, out);  // 157 <= 162
  EXPECT_FALSE(out["p"].forced_per_vm);
}

TEST(Limits, HighPriorityIsRestoredFirst) {
  std::vector<PolicyDemand> d{demand("high", 5, {1, 1}, 10), demand("low", 0, {1, 1}, 10)};
  LimitOutcome previous{{"high", {false, 1}}, {"low", {false, 1}}};  // one event dropped from each
  auto out = apply_limits(d, limits(0, 34), previous);  // 20 now; 30 (<= 30.6) with high restored, 40 with both
  EXPECT_EQ(out["high"].dropped, 0u);
  EXPECT_EQ(out["low"].dropped, 1u);
}

TEST(Limits, EventsThatWereNotPlannedBeforeAreNoDegradation) {
  // At start the policies run without events until they are probed; a reload adds events.
  LimitOutcome before = apply_limits({demand("p", 0, {}, 10)}, limits(0, 1000), {});
  auto out = apply_limits({demand("p", 0, {2, 2, 2}, 10)}, limits(0, 1000), before);  // 60 of 1000, 95% is fine too
  EXPECT_EQ(out["p"].dropped, 0u);
  out = apply_limits({demand("p", 0, {2, 2, 2, 2}, 10)}, limits(0, 1000), out);
  EXPECT_EQ(out["p"].dropped, 0u);
}

TEST(Limits, OverASamplingLimitTheLowestPriorityStopsSamplingAndComesBackBelowNinetyPercent) {
  auto demands = [](size_t web_threads) {
    PolicyDemand web = demand("web", 0, {}, web_threads);
    web.sampled_threads = web_threads;
    web.ring_bytes = 9 * 4096;
    PolicyDemand db = demand("db", 10, {}, 4);
    db.sampled_threads = 4;
    db.ring_bytes = 65 * 4096;
    return std::vector<PolicyDemand>{db, web};
  };
  Limits l;
  l.max_sampled_threads = 10;
  LimitOutcome out = apply_limits(demands(8), l, {});  // 12 threads > 10
  EXPECT_FALSE(out["db"].sampling_off);
  EXPECT_TRUE(out["web"].sampling_off);
  out = apply_limits(demands(6), l, out);  // 10 would fit, but not 90%
  EXPECT_TRUE(out["web"].sampling_off);
  out = apply_limits(demands(5), l, out);  // 9 <= 9: restored
  EXPECT_FALSE(out["web"].sampling_off);
  Limits bytes;
  bytes.max_ring_bytes = 4 * 65 * 4096;  // room for db's rings only
  out = apply_limits(demands(2), bytes, {});
  EXPECT_FALSE(out["db"].sampling_off);
  EXPECT_TRUE(out["web"].sampling_off);
}

TEST(Limits, EachKindOfStepIsUndoneAgainstTheLimitsItAffects) {
  // Series near their limit (956 of 1000, no step needed there) must not keep sampling off once
  // the rings are back below 90%.
  PolicyDemand p = demand("p", 0, {}, 68);  // 4 + 68 vCPUs x 14 series = 956
  p.sampled_threads = 2;
  p.ring_bytes = 1;
  Limits l;
  l.max_series = 1000;
  l.max_sampled_threads = 10;
  LimitOutcome previous{{"p", PolicyAllowance{false, 0, true}}};
  EXPECT_FALSE(apply_limits({p}, l, previous)["p"].sampling_off);
  // A higher priority whose sampling stays off does not hold back a lower one's dropped events.
  PolicyDemand high = demand("high", 10, {}, 1);
  high.sampled_threads = 10;
  high.ring_bytes = 1;
  PolicyDemand low = demand("low", 0, {1, 1}, 1);
  l = Limits{};
  l.max_sampled_threads = 10;
  l.max_counters = 100;
  previous = {{"high", PolicyAllowance{false, 0, true}}, {"low", PolicyAllowance{false, 1, false}}};
  LimitOutcome out = apply_limits({high, low}, l, previous);
  EXPECT_TRUE(out["high"].sampling_off);  // 10 of 10 threads: not below 90%
  EXPECT_EQ(out["low"].dropped, 0u);
}
