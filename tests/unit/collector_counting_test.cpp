// What the collector counts: retries of refused counters, read failures, liveness, reloads,
// hybrid core types, per-VM sums and host limits, on a file-backed QEMU with the fake kernel
// (and real threads for EMFILE).
#include "agent/collect/collector.h"

#include <gtest/gtest.h>

#include <thread>

#include "tests/support/collector_fixture.h"

using namespace kvmprof;
using namespace kvmprof::testing;
using namespace std::chrono_literals;

TEST(Collector, ReadsEachCounterGroupOncePerCycle) {
  FileVm vm;
  Collector collector(vm.qemu.root(), vm.kernel, plan_for(vm.kernel, vm.qemu.root(), {"task-clock", "cs", "page-faults"}));
  collect(collector, {domain(2)});
  const size_t before = vm.kernel.reads();
  for (int i = 0; i < 5; ++i) collect(collector, {domain(2)});
  EXPECT_EQ(vm.kernel.reads() - before, 5u * 2u);  // one software group per vCPU thread, one read() each
}

TEST(Collector, EmfileIsCountedThenRetriedWithBackoff) {
  RealVm vm;
  Collector& collector = *vm.collector;
  rlimit saved{};
  ::getrlimit(RLIMIT_NOFILE, &saved);
  // New fds take the lowest free numbers: allow exactly the next two (the procfs files).
  int first = ::dup(0), second = ::dup(0);
  ::close(first);
  ::close(second);
  rlimit low{static_cast<rlim_t>(second) + 1, saved.rlim_max};
  ::setrlimit(RLIMIT_NOFILE, &low);
  const auto t0 = Clock::now();
  Snapshot s = collect(collector, {domain(1)}, t0);
  ::setrlimit(RLIMIT_NOFILE, &saved);
  EXPECT_EQ((s.perf_open_errors[{"task-clock", "EMFILE"}]), 1u);
  ASSERT_EQ(s.vms.at(0).vcpus.size(), 1u);
  EXPECT_TRUE(s.vms[0].vcpus[0].events.empty());  // no counter: no series, not a zero
  EXPECT_FALSE(source(s, "perf:task-clock").up);
  EXPECT_NE(source(s, "perf:task-clock").reason.find("EMFILE"), std::string::npos);
  s = collect(collector, {domain(1)}, t0 + 500ms);  // within the backoff: not tried again
  EXPECT_EQ((s.perf_open_errors[{"task-clock", "EMFILE"}]), 1u);
  s = collect(collector, {domain(1)}, t0 + 1500ms);  // tried again, and it opens now
  EXPECT_TRUE(source(s, "perf:task-clock").up);
  std::this_thread::sleep_for(50ms);
  s = collect(collector, {domain(1)}, t0 + 1600ms);
  EXPECT_EQ(vcpu(s, 0)->events.size(), 1u);
}

TEST(Collector, KernelRefusalsAreSourceDownWithErrnoAndAdviceAndAreRetried) {
  FileVm vm;
  Collector collector(vm.qemu.root(), vm.kernel, plan_for(vm.kernel, vm.qemu.root(), {"task-clock", "page-faults"}));
  vm.kernel.deny(101);
  vm.kernel.deny(102);
  const auto t0 = Clock::now();
  collect(collector, {domain(2)}, t0);
  vm.run(1'000'000'000);
  Snapshot s = collect(collector, {domain(2)}, t0 + 100ms);
  const SourceStatus& src = source(s, "perf:task-clock");
  EXPECT_FALSE(src.up);
  EXPECT_NE(src.reason.find("EACCES"), std::string::npos) << src.reason;
  EXPECT_NE(src.reason.find("CAP_PERFMON"), std::string::npos) << src.reason;
  for (const auto& info : s.event_info) {
    EXPECT_EQ(info.status, "failed") << info.event;
    EXPECT_NE(info.reason.find("EACCES"), std::string::npos);
  }
  EXPECT_TRUE(vcpu(s, 0)->events.empty());
  vm.kernel.allow(101);
  vm.kernel.allow(102);
  collect(collector, {domain(2)}, t0 + 1200ms);  // the backoff is over: opened again
  vm.run(1'000'000'000);
  s = collect(collector, {domain(2)}, t0 + 1300ms);
  EXPECT_TRUE(source(s, "perf:task-clock").up);
  EXPECT_EQ(s.event_info[0].status, "ok");
  ASSERT_EQ(vcpu(s, 0)->events.size(), 2u);
  EXPECT_DOUBLE_EQ(vcpu(s, 0)->events[0].value, 1e6);  // counted since it opened
}

TEST(Collector, CountersThatFailToReadAreSourceDownWithTheirErrno) {
  FileVm vm;
  Collector collector(vm.qemu.root(), vm.kernel, plan_for(vm.kernel, vm.qemu.root()));
  collect(collector, {domain(2)});
  vm.kernel.read_errno = EIO;
  Snapshot s = collect(collector, {domain(2)});
  EXPECT_FALSE(source(s, "perf:task-clock").up);
  EXPECT_EQ(source(s, "perf:task-clock").reason, "reads of its counters fail (EIO); counted in kvmprof_read_errors_total");
  EXPECT_EQ((s.read_errors[{"perf", "EIO"}]), 2u);
  vm.kernel.read_errno = 0;
  EXPECT_TRUE(source(collect(collector, {domain(2)}), "perf:task-clock").up);
}

TEST(Collector, AnEventIsLiveWhenAnyPolicyCountsIt) {
  FileVm vm;
  std::vector<Policy> named{policy("unused", {})};  // lists task-clock in a way that cannot be counted
  named[0].events.push_back({std::get<EventSpec>(parse_event_spec("task-clock")), GuestMode::kExclude, {}});
  named[0].match.domain = "nothing-matches";
  Collector collector(vm.qemu.root(), vm.kernel, plan_for(vm.kernel, vm.qemu.root(), {"task-clock"}, named));
  collect(collector, {domain(2)});
  vm.run(1'000'000'000);
  Snapshot s = collect(collector, {domain(2)});
  EXPECT_TRUE(source(s, "perf:task-clock").up);
  EXPECT_EQ(vcpu(s, 0)->events.size(), 1u);
}

TEST(Collector, APerVmSumNeverDropsWhenAVcpuThreadGoes) {
  FileVm vm;
  Policy p = policy("default", {"task-clock"});
  p.aggregation = Aggregation::kPerVm;
  HostModel host = probe_host(HostRoot("/"));
  CollectorPlan plan{{}, make_policy_plan(p, plan_events(vm.qemu.root(), vm.kernel, p.events, host, builtin_quirks()), 4), {}, 0ms, {}};
  Collector collector(vm.qemu.root(), vm.kernel, plan);
  collect(collector, {domain(2)});
  vm.run(1'000'000'000);
  double last = collect(collector, {domain(2)}).vms.at(0).events.at(0).value;
  EXPECT_DOUBLE_EQ(last, 2e6);
  vm.kernel.exit_thread(102);  // vCPU 1's thread goes (hot-unplug)
  vm.qemu.remove_thread(102);
  for (int i = 0; i < 12; ++i) {  // a reconcile notices it
    vm.qemu.run(101, 100'000'000);
    vm.kernel.run(101, 100'000'000, 100'000'000);
    Snapshot s = collect(collector, {domain(1)});
    double now = s.vms.at(0).events.at(0).value;
    EXPECT_GE(now, last) << "cycle " << i;
    last = now;
  }
  EXPECT_DOUBLE_EQ(last, 2e6 + 12 * 1e5);  // vCPU 1's count stays in the sum
}

TEST(Collector, AReloadKeepsEveryCounterAndItsTimesGrowing) {
  FileVm vm;
  Collector collector(vm.qemu.root(), vm.kernel, plan_for(vm.kernel, vm.qemu.root(), {"task-clock"}));
  collect(collector, {domain(2)});
  vm.run(1'000'000'000);
  Snapshot before = collect(collector, {domain(2)});
  collector.apply(plan_for(vm.kernel, vm.qemu.root(), {"page-faults", "task-clock"}));  // reopens the counters
  vm.run(1'000'000'000);
  Snapshot after = collect(collector, {domain(2)});
  auto old_values = series(before), new_values = series(after);
  size_t compared = 0;
  for (const auto& [key, value] : old_values) {
    if (!key.first.starts_with("kvmprof_vcpu_event")) continue;
    ASSERT_TRUE(new_values.contains(key)) << key.first;
    EXPECT_GT(new_values[key], value) << key.first;
    ++compared;
  }
  EXPECT_EQ(compared, 2u);  // task-clock's value x 2 vCPUs
}

TEST(Collector, OnlyHardwareCountersExportTheirEnabledAndRunningTimes) {
  // Software events and tracepoints are never multiplexed: their times would say nothing.
  FileVm vm;
  Collector collector(vm.qemu.root(), vm.kernel, plan_for(vm.kernel, vm.qemu.root(), {"task-clock", "cs"}));
  collect(collector, {domain(2)});
  vm.run(1'000'000'000);
  size_t values = 0;
  for (const auto& [key, value] : series(collect(collector, {domain(2)}))) {
    EXPECT_FALSE(key.first.starts_with("kvmprof_vcpu_event_")) << key.first;
    values += key.first == "kvmprof_vcpu_events_total";
  }
  EXPECT_EQ(values, 4u);  // 2 events x 2 vCPUs
}

TEST(Collector, ReloadReopensOnlyTheVmsWhoseCountersChange) {
  FileVm vm;
  std::vector<Policy> named{policy("two", {"task-clock"})};
  named[0].match.domain = "two";
  auto plan = plan_for(vm.kernel, vm.qemu.root(), {"task-clock"}, named);
  Collector collector(vm.qemu.root(), vm.kernel, plan);
  DomainRecord one = domain(2);
  one.name = "one";
  collect(collector, {one});
  const size_t opens = vm.kernel.calls().size();
  named[0].events = policy("", {"task-clock", "cs"}).events;  // the other policy changes
  collector.apply(plan_for(vm.kernel, vm.qemu.root(), {"task-clock"}, named));
  collect(collector, {one});
  // Planning opened the three events once each; VM "one" (default policy, unchanged) kept its counters.
  EXPECT_EQ(vm.kernel.calls().size(), opens + 3);
}

TEST(Collector, HybridCountersAreOneSeriesPerEventAndModeSummedOverCoreTypes) {
  FileQemu qemu{kUuid};
  qemu.add_thread(101, "CPU 0/KVM");
  FakeKernel kernel = linux_6_1_intel_hybrid();
  kernel.count_for = [](const perf_event_attr& a) -> uint64_t {  // per second: 1000 on a P-core, 300 on an E-core
    if (a.type != PERF_TYPE_HARDWARE) return 0;
    return (a.config >> PERF_PMU_TYPE_SHIFT) == kAtomPmuType ? 300 : 1000;
  };
  kernel.enabled_ns = kernel.running_ns = 0;
  Policy p = policy("default", {"cycles"});
  p.events[0].guest = GuestMode::kSplit;
  HostModel host = probe_host(HostRoot(std::string(KVMPROF_SOURCE_DIR) + "/tests/fixtures/cpus/intel-alderlake-hybrid"));
  CollectorPlan plan{{}, make_policy_plan(p, plan_events(qemu.root(), kernel, p.events, host, builtin_quirks()), 4), {}, 0ms, {}};
  ASSERT_EQ(plan.default_policy.slots.size(), 4u);  // host and guest on each core type
  Collector collector(qemu.root(), kernel, plan);
  collect(collector, {domain(1)});
  kernel.run(101, 1'000'000'000, 1'000'000'000, kCorePmuType);  // 1 s on a P-core
  kernel.run(101, 1'000'000'000, 1'000'000'000, kAtomPmuType);  // 1 s on an E-core
  Snapshot s = collect(collector, {domain(1)});
  auto values = series(s);  // one series per (event, mode): no duplicates
  Labels labels{{"domain", "vm \"1\""}, {"uuid", kUuid}, {"vcpu", "0"}, {"event", "cycles"}, {"mode", "host"}};
  // 1000 + 300 counted; scaling each core type alone would report 2000 + 600.
  EXPECT_DOUBLE_EQ(values.at({"kvmprof_vcpu_events_total", labels}), 1300);
  labels["mode"] = "guest";
  EXPECT_DOUBLE_EQ(values.at({"kvmprof_vcpu_events_total", labels}), 1300);
  EXPECT_DOUBLE_EQ(values.at({"kvmprof_vcpu_event_enabled_seconds_total", labels}), 2.0);
  EXPECT_DOUBLE_EQ(values.at({"kvmprof_vcpu_event_running_seconds_total", labels}), 2.0);
  kernel.run(101, 1'000'000'000, 1'000'000'000, kCorePmuType);
  kernel.read_errno = EIO;  // this interval's reads fail: nothing is added, nothing extrapolated
  collect(collector, {domain(1)});
  kernel.read_errno = 0;
  kernel.run(101, 1'000'000'000, 1'000'000'000, kAtomPmuType);
  values = series(collect(collector, {domain(1)}));
  EXPECT_DOUBLE_EQ(values.at({"kvmprof_vcpu_events_total", labels}), 2600);  // exactly 2 x (1000 + 300)
}

TEST(Collector, CrossingMaxSeriesBackAndForthReopensNoCounter) {
  FileVm vm;
  CollectorPlan plan = plan_for(vm.kernel, vm.qemu.root(), {"task-clock", "cs"});
  plan.limits.max_series = 35;  // 2 vCPUs: 4 + 2 x (14 + 2) = 36 per vCPU; per VM 4 + 28 + 2 = 34
  Collector collector(vm.qemu.root(), vm.kernel, plan);
  Snapshot s = collect(collector, {domain(2)});
  ASSERT_EQ(s.limit_actions.size(), 1u);
  EXPECT_EQ(s.limit_actions[0].action, "per_vm");
  const size_t opens = vm.kernel.calls().size();
  for (int i = 0; i < 5; ++i) {
    collect(collector, {domain(1)});  // 1 vCPU: 4 + 16 = 20 series, under 90%: per vCPU again
    collect(collector, {domain(2)});
  }
  EXPECT_EQ(vm.kernel.calls().size(), opens);  // aggregation never reopens counters
}
