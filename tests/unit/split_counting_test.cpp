// Split counting through the fake kernel personalities: scripted host and guest counts on
// real (named) threads come out as the host and guest series, scaled for multiplexing; where
// the guest side cannot be counted it is absent, never zero.
#include <gtest/gtest.h>

#include <set>
#include <tuple>

#include "agent/collect/collector.h"
#include "agent/system/host_probe.h"
#include "tests/support/fake_kernel.h"
#include "tests/support/fixtures.h"
#include "tests/support/collect.h"
#include "tests/support/fake_qemu.h"
#include "tests/support/series.h"

using namespace kvmprof;
using namespace kvmprof::testing;

namespace {


Policy policy(std::vector<std::pair<std::string, GuestMode>> events) {
  Policy p;
  p.name = "default";
  for (const auto& [spec, guest] : events) p.events.push_back({std::get<EventSpec>(parse_event_spec(spec)), guest, {}});
  return p;
}

Snapshot collect_once(FakeKernel& kernel, const HostModel& host, const Policy& p) {
  QemuFixture qemu;
  FakeQemuThread cpu0("CPU 0/KVM");
  qemu.add(cpu0.tid());
  auto planned = plan_events(qemu.root(), kernel, p.events, host, builtin_quirks());
  Collector collector(qemu.root(), kernel, {{}, make_policy_plan(p, std::move(planned), 4), {}, std::chrono::milliseconds(0), {}});
  DomainRecord vm{"vm", kUuid, 1, 1, "", {}, {}};
  Snapshot s = collect(collector, std::vector<DomainRecord>{vm});
  series(s);  // every scrape: no duplicate series
  return s;
}

std::map<std::string, EventValue> events_of(const Snapshot& s) {
  std::map<std::string, EventValue> out;
  for (const auto& e : s.vms.at(0).vcpus.at(0).events) out[e.event + "/" + e.mode] = e;
  return out;
}

// Counts by what the counter excludes: host 1000, guest 3000, both 4000.
uint64_t scripted(const perf_event_attr& a) { return a.exclude_guest ? 1000 : a.exclude_host ? 3000 : 4000; }

}  // namespace

TEST(SplitCounting, HostAndGuestSeriesEqualTheScriptedCountsScaledForMultiplexing) {
  FakeKernel kernel = linux_6_1_intel();
  kernel.count_for = scripted;
  kernel.enabled_ns = 2'000'000'000;  // ran half the time it was enabled: counts are doubled
  kernel.running_ns = 1'000'000'000;
  Snapshot s = collect_once(kernel, fixture("intel-skylake-client-new-ucode"),
                            policy({{"cycles", GuestMode::kSplit}, {"instructions", GuestMode::kInclude}}));
  auto events = events_of(s);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_DOUBLE_EQ(events["cycles/host"].value, 2000);
  EXPECT_DOUBLE_EQ(events["cycles/guest"].value, 6000);
  EXPECT_DOUBLE_EQ(events["instructions/all"].value, 8000);
  EXPECT_EQ(events["cycles/guest"].enabled_seconds, 2.0);
  EXPECT_EQ(events["cycles/guest"].running_seconds, 1.0);
}

TEST(SplitCounting, AmdWithoutSvmLeavesTheGuestSideAbsentNotZero) {
  FakeKernel kernel = linux_6_1_amd_ibs();
  kernel.count_for = scripted;
  Snapshot s = collect_once(kernel, fixture("amd-zen2-epyc-7702-no-svm"), policy({{"cycles", GuestMode::kAuto}}));
  auto events = events_of(s);
  EXPECT_EQ(events.size(), 1u);
  EXPECT_TRUE(events.contains("cycles/host"));
  EXPECT_FALSE(events.contains("cycles/guest"));
  ASSERT_EQ(s.event_info.size(), 1u);
  EXPECT_EQ(s.event_info[0].status, "degraded");
  EXPECT_NE(s.event_info[0].reason.find("amd-guest-bits-need-svm"), std::string::npos);
}

TEST(SplitCounting, MediatedVpmuNeverGetsAGuestInclusiveCoreEvent) {
  FakeKernel kernel = linux_7_mediated();
  kernel.count_for = scripted;
  Snapshot s = collect_once(kernel, fixture("intel-sapphirerapids-mediated-vpmu"),
                            policy({{"cycles", GuestMode::kAuto}, {"instructions", GuestMode::kAuto}}));
  for (const auto& [attr, err] : kernel.calls()) EXPECT_TRUE(attr.exclude_guest) << "a guest-inclusive core event was asked";
  auto events = events_of(s);
  EXPECT_EQ(events.size(), 2u);
  EXPECT_DOUBLE_EQ(events["cycles/host"].value, 1000);
}

TEST(SplitCounting, PerVmAggregationSumsTheVcpus) {
  FakeKernel kernel = linux_6_1_intel();
  kernel.count_for = scripted;
  QemuFixture qemu;
  FakeQemuThread cpu0("CPU 0/KVM"), cpu1("CPU 1/KVM");
  qemu.add(cpu0.tid());
  qemu.add(cpu1.tid());
  Policy p = policy({{"cycles", GuestMode::kSplit}});
  p.aggregation = Aggregation::kPerVm;
  HostModel host = fixture("intel-skylake-client-new-ucode");
  auto planned = plan_events(qemu.root(), kernel, p.events, host, builtin_quirks());
  Collector collector(qemu.root(), kernel, {{}, make_policy_plan(p, std::move(planned), 4), {}, std::chrono::milliseconds(0), {}});
  Snapshot s = collect(collector, std::vector<DomainRecord>{{"vm", kUuid, 1, 2, "", {}, {}}});
  const VmSample& vm = s.vms.at(0);
  for (const auto& vcpu : vm.vcpus) EXPECT_TRUE(vcpu.events.empty());
  ASSERT_EQ(vm.events.size(), 2u);
  for (const auto& e : vm.events) EXPECT_DOUBLE_EQ(e.value, e.mode == "host" ? 2000 : 6000) << e.mode;
  series(s);
}

TEST(CollectorLimits, LowPriorityPoliciesAggregatePerVmThenLoseEvents) {
  FakeKernel kernel = linux_6_1_intel();
  HostModel host = fixture("intel-skylake-client-new-ucode");
  QemuFixture qemu;
  FakeQemuThread cpu0("CPU 0/KVM");
  qemu.add(cpu0.tid());
  Policy important = policy({{"cycles", GuestMode::kSplit}});
  important.name = "important";
  important.priority = 10;
  important.match.domain = "important-*";
  Policy batch = policy({{"instructions", GuestMode::kSplit}, {"branches", GuestMode::kSplit}});  // the default
  auto plan_of = [&](const Policy& p) {
    return make_policy_plan(p, plan_events(qemu.root(), kernel, p.events, host, builtin_quirks()), 4);
  };
  Limits limits;
  limits.max_series = 46;  // important per vCPU (4 + 14 + 6) + batch per vCPU (4 + 14 + 12) do not fit; batch per VM (22) does
  limits.max_counters = 4;  // important needs 2, batch 4: batch keeps one event (2 counters)
  Collector collector(qemu.root(), kernel, {{plan_of(important)}, plan_of(batch), limits, std::chrono::milliseconds(0), {}});
  Snapshot s = collect(collector, std::vector<DomainRecord>{{"important-1", "00000000-0000-0000-0000-000000000001", 1, 1, "", {}, {}},
                                                         {"batch-1", kUuid, 2, 1, "", {}, {}}});
  std::set<std::tuple<std::string, std::string, std::string>> actions;
  for (const auto& a : s.limit_actions) actions.emplace(a.policy, a.action, a.event);
  EXPECT_TRUE(actions.contains({"default", "per_vm", ""}));
  EXPECT_TRUE(actions.contains({"default", "dropped", "branches"}));
  for (const auto& a : s.limit_actions) EXPECT_NE(a.policy, "important");
  auto batch_vm = std::find_if(s.vms.begin(), s.vms.end(), [](const VmSample& vm) { return vm.name == "batch-1"; });
  ASSERT_NE(batch_vm, s.vms.end());
  EXPECT_EQ(batch_vm->policy, "default");
  ASSERT_EQ(batch_vm->events.size(), 2u);  // aggregated per VM, one split event left
  for (const auto& e : batch_vm->events) EXPECT_EQ(e.event, "instructions");
  for (const auto& vcpu : batch_vm->vcpus) EXPECT_TRUE(vcpu.events.empty());
  series(s);
}
