// The open ladder against each kernel personality: the errno sequence and the final attr.
#include "agent/system/open_ladder.h"

#include <gtest/gtest.h>

#include "agent/system/host_probe.h"
#include "tests/support/fake_kernel.h"
#include "tests/support/fixtures.h"

using namespace kvmprof;
using namespace kvmprof::testing;

namespace {


Decision decision(const std::string& spec, GuestMode mode, const HostModel& host) {
  return decide(std::get<EventSpec>(parse_event_spec(spec)), mode, host, builtin_quirks());
}

std::vector<int> errnos(const FakeKernel& k) {
  std::vector<int> out;
  for (const auto& [attr, err] : k.calls()) out.push_back(err);
  return out;
}

FakeKernel answering(int err, int times) {
  auto left = std::make_shared<int>(times);
  return FakeKernel("scripted", {{"test script", [=](const perf_event_attr& a) {
                                   if (*left <= 0) return 0;
                                   --*left;
                                   if (err == E2BIG) const_cast<perf_event_attr&>(a).size = PERF_ATTR_SIZE_VER5;
                                   return err;
                                 }}});
}

}  // namespace

TEST(OpenLadder, LowersPreciseOnlyForP) {
  HostModel host = fixture("intel-skylake-client-new-ucode");  // max_precise 3
  FakeKernel k = linux_3_6();                                    // supports 2
  OpenedDecision o = open_decision(k, decision("cycles:P", GuestMode::kExclude, host), 1, -1, -1, host);
  EXPECT_EQ(errnos(k), (std::vector<int>{EOPNOTSUPP, 0}));
  ASSERT_EQ(o.counters.size(), 1u);
  EXPECT_EQ(o.counters[0].attr.precise_ip, 2u);
  EXPECT_NE(o.steps.at(0).action.find("lowered precise_ip to 2"), std::string::npos);

  FakeKernel strict = linux_3_6();
  OpenedDecision refused = open_decision(strict, decision("cycles:ppp", GuestMode::kExclude, host), 1, -1, -1, host);
  EXPECT_EQ(errnos(strict), (std::vector<int>{EOPNOTSUPP}));  // explicit ppp: never lowered
  EXPECT_EQ(refused.status, DecisionStatus::kRefused);
}

TEST(OpenLadder, OldKernelRefusingPreciseWithGuestGetsExcludeGuestForAuto) {
  HostModel host = fixture("amd-zen1-epyc-7601");  // IBS: the decision counts all
  FakeKernel k = linux_3_6();
  OpenedDecision o = open_decision(k, decision("cycles:p", GuestMode::kAuto, host), 1, -1, -1, host);
  EXPECT_EQ(errnos(k), (std::vector<int>{EOPNOTSUPP, 0}));
  ASSERT_EQ(o.counters.size(), 1u);
  EXPECT_TRUE(o.counters[0].attr.exclude_guest);
  EXPECT_EQ(o.semantics, "host");
  EXPECT_EQ(o.steps.at(0).quirk, "kernel-precise-needs-exclude-guest");
}

TEST(OpenLadder, KernelWithoutExcludeBitsCountsAllOnceForAutoSplit) {
  HostModel host = fixture("intel-westmere-ep");
  FakeKernel k = linux_3_1();
  OpenedDecision o = open_decision(k, decision("instructions", GuestMode::kAuto, host), 1, -1, -1, host);
  EXPECT_EQ(errnos(k), (std::vector<int>{EINVAL, 0}));  // the guest counter is not opened at all
  ASSERT_EQ(o.counters.size(), 1u);
  EXPECT_EQ(o.counters[0].mode, "all");
  EXPECT_EQ(o.semantics, "all");
  EXPECT_EQ(o.status, DecisionStatus::kDegraded);
}

TEST(OpenLadder, NeverWidensAnExplicitRequest) {
  HostModel host = fixture("intel-westmere-ep");
  FakeKernel k = linux_3_1();
  OpenedDecision o = open_decision(k, decision("instructions", GuestMode::kExclude, host), 1, -1, -1, host);
  EXPECT_EQ(errnos(k), (std::vector<int>{EINVAL}));
  EXPECT_TRUE(o.counters.empty());
  EXPECT_EQ(o.status, DecisionStatus::kRefused);
}

TEST(OpenLadder, RenegotiatesAttrSize) {
  HostModel host = fixture("this-machine");
  FakeKernel k = answering(E2BIG, 1);
  OpenedDecision o = open_decision(k, decision("task-clock", GuestMode::kAuto, host), 1, -1, -1, host);
  EXPECT_EQ(errnos(k), (std::vector<int>{E2BIG, 0}));
  EXPECT_EQ(k.calls().back().first.size, uint32_t{PERF_ATTR_SIZE_VER5});
  EXPECT_EQ(o.counters.size(), 1u);
}

TEST(OpenLadder, PermissionErrorsNameTheCapabilityAndParanoid) {
  HostModel host = fixture("this-machine");
  FakeKernel k = answering(EACCES, 1);
  OpenedDecision o = open_decision(k, decision("task-clock", GuestMode::kAuto, host), 1, -1, -1, host);
  EXPECT_EQ(o.status, DecisionStatus::kRefused);
  EXPECT_NE(o.reason.find("CAP_PERFMON"), std::string::npos);
  EXPECT_NE(o.reason.find("perf_event_paranoid (now 2"), std::string::npos);
}

TEST(OpenLadder, MissingEventsAreUnsupported) {
  HostModel host = fixture("intel-skylake-client-new-ucode");
  FakeKernel k = no_hardware_pmu();
  OpenedDecision o = open_decision(k, decision("cycles", GuestMode::kAuto, host), 1, -1, -1, host);
  EXPECT_EQ(errnos(k), (std::vector<int>{ENOENT}));
  EXPECT_EQ(o.status, DecisionStatus::kUnsupported);
}

TEST(OpenLadder, MediatedVpmuRefusalIsNeverWidenedOnAnyKernel) {
  HostModel host = fixture("intel-sapphirerapids-mediated-vpmu");
  FakeKernel k = linux_7_mediated();
  OpenedDecision o = open_decision(k, decision("cycles", GuestMode::kAuto, host), 1, -1, -1, host);
  EXPECT_EQ(errnos(k), (std::vector<int>{0}));
  ASSERT_EQ(o.counters.size(), 1u);
  EXPECT_TRUE(o.counters[0].attr.exclude_guest);
}
