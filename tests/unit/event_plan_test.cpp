// How planned counters are grouped: per PMU, within the PMU's counters, pairs together.
#include "agent/collect/event_plan.h"

#include <gtest/gtest.h>

#include "tests/support/fake_kernel.h"
#include "tests/support/fixtures.h"

using namespace kvmprof;
using namespace kvmprof::testing;

namespace {

PolicyPlan planned(FakeKernel& kernel, const std::string& cpu, std::vector<std::pair<std::string, GuestMode>> events,
                   size_t group_size = 4) {
  Policy p;
  p.name = "default";
  for (const auto& [spec, guest] : events) p.events.push_back({std::get<EventSpec>(parse_event_spec(spec)), guest, {}});
  return make_policy_plan(p, plan_events(HostRoot("/"), kernel, p.events, fixture(cpu), builtin_quirks()), group_size);
}

}  // namespace

TEST(EventPlan, HybridGroupsNeverMixCoreTypesAndEveryGroupOpens) {
  FakeKernel kernel = linux_6_1_intel_hybrid();
  PolicyPlan plan = planned(kernel, "intel-alderlake-hybrid",
                            {{"cycles", GuestMode::kExclude}, {"instructions", GuestMode::kExclude}, {"task-clock", GuestMode::kAuto}});
  ASSERT_EQ(plan.slots.size(), 5u);  // two core types x two events, plus task-clock
  ASSERT_EQ(plan.groups.size(), 3u);
  for (const auto& group : plan.groups) {
    for (size_t slot : group) EXPECT_EQ(plan.slots[slot].pmu, plan.slots[group.front()].pmu);
  }
  for (const auto& group : plan.groups) {  // the fake kernel refuses mixed groups: every group must open
    ErrorCounts errors;
    auto g = PerfGroup::open(kernel, 7, plan.slots, group, errors);
    ASSERT_TRUE(g.ok()) << g.error().message();
    EXPECT_EQ(g->fd_count(), group.size());
  }
}

TEST(EventPlan, HardwareGroupsFitThePmuCountersAndKeepPairsTogether) {
  FakeKernel kernel = linux_6_1_intel();
  PolicyPlan plan = planned(kernel, "intel-skylake-client-new-ucode",
                            {{"cycles", GuestMode::kSplit}, {"instructions", GuestMode::kSplit},
                             {"branches", GuestMode::kSplit}, {"task-clock", GuestMode::kAuto}});
  ASSERT_EQ(plan.groups.size(), 3u);  // task-clock; cycles+instructions pairs; branches pair
  EXPECT_EQ(plan.groups[0].size(), 1u);
  EXPECT_EQ(plan.groups[1].size(), 4u);
  EXPECT_EQ(plan.groups[2].size(), 2u);
  PolicyPlan small = planned(kernel, "intel-skylake-client-new-ucode", {{"cycles", GuestMode::kSplit}, {"instructions", GuestMode::kSplit}}, 3);
  ASSERT_EQ(small.groups.size(), 2u);  // a pair never straddles two groups
  EXPECT_EQ(small.groups[0].size(), 2u);
}
