// The collector on real threads of this test process (QemuFixture: a host root that makes
// them look like a QEMU process, counted by the real kernel), and on a file-backed QEMU with
// the fake kernel where a test needs exact times, read errors or refusals on demand.
#include "agent/collect/collector.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "agent/system/host_probe.h"
#include "tests/support/collect.h"
#include "tests/support/fake_kernel.h"
#include "tests/support/fake_qemu.h"
#include "tests/support/file_qemu.h"
#include "tests/support/series.h"

using namespace kvmprof;
using namespace kvmprof::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

using Clock = Collector::Clock;

size_t open_fds() {
  return static_cast<size_t>(std::distance(fs::directory_iterator("/proc/self/fd"), fs::directory_iterator()));
}

Policy policy(const std::string& name, std::vector<std::string> events) {
  Policy p;
  p.name = name;
  for (const auto& e : events) p.events.push_back({std::get<EventSpec>(parse_event_spec(e)), GuestMode::kAuto, {}});
  return p;
}

// A default policy counting `events`, planned for this host as the agent plans it, read on every collect().
CollectorPlan plan_for(PerfBackend& perf, const HostRoot& root, std::vector<std::string> events = {"task-clock"},
                       std::vector<Policy> named = {}) {
  HostModel host = probe_host(HostRoot("/"));
  auto plan_of = [&](const Policy& p) { return make_policy_plan(p, plan_events(root, perf, p.events, host, builtin_quirks()), 4); };
  CollectorPlan out{{}, plan_of(policy("default", std::move(events))), {}, 0ms, {}};
  for (const auto& p : named) out.policies.push_back(plan_of(p));
  return out;
}

DomainRecord domain(unsigned vcpus, int id = 1, std::string uuid = kUuid) {
  return DomainRecord{"vm \"1\"", std::move(uuid), id, vcpus, "", {}, {}};
}

const VcpuSample* vcpu(const Snapshot& s, unsigned index) {
  for (const auto& v : s.vms.at(0).vcpus) {
    if (v.index == index) return &v;
  }
  return nullptr;
}

const SourceStatus& source(const Snapshot& s, const std::string& name) {
  for (const auto& src : s.sources) {
    if (src.source == name) return src;
  }
  throw std::runtime_error("no source " + name);
}

double cpu_total(const VcpuSample& v) {
  double sum = 0;
  for (const auto& m : v.cpu) sum += m.seconds;
  return sum;
}

// A VM of two vCPU threads and one emulator thread made of files, counted by a fake kernel.
struct FileVm {
  FileQemu qemu{kUuid};
  FakeKernel kernel = no_hardware_pmu();
  FileVm() {
    kernel.count_for = [](const perf_event_attr&) { return 1'000'000; };  // 1e6 per second on the PMU
    kernel.enabled_ns = kernel.running_ns = 0;
    qemu.add_thread(101, "CPU 0/KVM");
    qemu.add_thread(102, "CPU 1/KVM");
    qemu.add_thread(103, "IO mon_iothread");
  }
  // Both vCPU threads run `ns` (procfs and perf agree).
  void run(uint64_t ns) {
    for (pid_t tid : {101, 102}) {
      qemu.run(tid, ns);
      kernel.run(tid, ns, ns);
    }
  }
};

}  // namespace

TEST(Collector, MapsVcpuThreadsByNameAndCountsThemForReal) {
  QemuFixture qemu;
  FakeQemuThread cpu0("CPU 0/KVM"), cpu1("CPU 1/KVM"), io("IO mon_iothread");
  for (pid_t tid : {cpu0.tid(), cpu1.tid(), io.tid()}) qemu.add(tid);
  RealPerfBackend perf;
  Collector collector(qemu.root(), perf, plan_for(perf, qemu.root()));
  std::vector<DomainRecord> domains{domain(2)};
  collect(collector, domains);
  std::this_thread::sleep_for(100ms);
  Snapshot s = collect(collector, domains);
  ASSERT_EQ(s.vms.size(), 1u);
  EXPECT_TRUE(s.vms[0].mapped);
  ASSERT_EQ(s.vms[0].vcpus.size(), 2u);
  ASSERT_EQ(vcpu(s, 1)->events.size(), 1u);
  EXPECT_EQ(vcpu(s, 1)->events[0].event, "task-clock");
  EXPECT_GT(vcpu(s, 1)->events[0].value, 10e6);  // > 10 ms of a spinning thread in 100 ms
  EXPECT_GT(cpu_total(*vcpu(s, 0)), 0.01);
  EXPECT_FALSE(s.vms[0].emulator_cpu.empty());
  EXPECT_TRUE(source(s, "perf:task-clock").up);
  series(s);  // no duplicate series
}

TEST(Collector, AThreadExitingMidCycleIsCountedAndItsFdsClosed) {
  QemuFixture qemu;
  FakeQemuThread cpu0("CPU 0/KVM");
  auto cpu1 = std::make_unique<FakeQemuThread>("CPU 1/KVM");
  qemu.add(cpu0.tid());
  qemu.add(cpu1->tid());
  RealPerfBackend perf;
  const size_t baseline = open_fds();
  Collector collector(qemu.root(), perf, plan_for(perf, qemu.root()));
  std::vector<DomainRecord> domains{domain(2)};
  collect(collector, domains);
  EXPECT_EQ(open_fds() - baseline, 2u * 3u);  // per vCPU: schedstat, stat, one counter
  cpu1.reset();  // the thread exits; its directory link now dangles
  Snapshot s = collect(collector, domains);
  EXPECT_EQ(s.vms.at(0).vcpus.size(), 1u);
  EXPECT_FALSE(s.vms[0].mapped);
  EXPECT_GE((s.read_errors[{"procfs", "ESRCH"}] + s.read_errors[{"procfs", "ENOENT"}]), 1u);
  EXPECT_EQ(open_fds() - baseline, 3u);
  collect(collector, {});  // the VM stops
  EXPECT_EQ(open_fds(), baseline);
}

TEST(Collector, ManyStartsAndStopsLeakNoFds) {
  QemuFixture qemu;
  FakeQemuThread cpu0("CPU 0/KVM");
  qemu.add(cpu0.tid());
  RealPerfBackend perf;
  Collector collector(qemu.root(), perf, plan_for(perf, qemu.root()));
  const size_t baseline = open_fds();
  for (int i = 0; i < 200; ++i) {
    Snapshot s = collect(collector, {domain(1, i)});  // new id: restarted
    ASSERT_EQ(s.vms.size(), 1u);
    collect(collector, {});
    ASSERT_EQ(open_fds(), baseline) << "cycle " << i;
  }
}

TEST(Collector, ReadsEachCounterGroupOncePerCycle) {
  FileVm vm;
  Collector collector(vm.qemu.root(), vm.kernel, plan_for(vm.kernel, vm.qemu.root(), {"task-clock", "cs", "page-faults"}));
  collect(collector, {domain(2)});
  const size_t before = vm.kernel.reads();
  for (int i = 0; i < 5; ++i) collect(collector, {domain(2)});
  EXPECT_EQ(vm.kernel.reads() - before, 5u * 2u);  // one software group per vCPU thread, one read() each
}

TEST(Collector, EmfileIsCountedThenRetriedWithBackoff) {
  QemuFixture qemu;
  FakeQemuThread cpu0("CPU 0/KVM");
  qemu.add(cpu0.tid());
  RealPerfBackend perf;
  Collector collector(qemu.root(), perf, plan_for(perf, qemu.root()));
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

TEST(Collector, WhileLibvirtIsDownKnownVmsAreMeasuredAndItsExitSeriesGo) {
  FileVm vm;
  Collector collector(vm.qemu.root(), vm.kernel, plan_for(vm.kernel, vm.qemu.root()));
  DomainRecord record = domain(2);
  record.exits = {{0, {{"all", 10}}}, {1, {{"all", 20}}}};
  collect(collector, {record});
  Snapshot s = collect(collector, {record});
  EXPECT_TRUE(source(s, "libvirt_vcpu_exits").up);
  EXPECT_EQ(vcpu(s, 1)->exits.at("all"), 20u);
  vm.run(1'000'000'000);
  Snapshot down = collect_without_libvirt(collector);
  EXPECT_FALSE(source(down, "libvirt_vcpu_exits").up);
  EXPECT_TRUE(vcpu(down, 0)->exits.empty());  // not live, no series
  EXPECT_TRUE(vcpu(down, 1)->exits.empty());
  EXPECT_NEAR(cpu_total(*vcpu(down, 0)), cpu_total(*vcpu(s, 0)) + 1.0, 1e-6);  // still measured
  for (const auto& [key, value] : series(down)) EXPECT_NE(key.first, "kvmprof_vcpu_exits_total");
}

TEST(Collector, AVmWhoseThreadsAllExitedLeavesInTheSameCycle) {
  QemuFixture qemu;
  auto cpu0 = std::make_unique<FakeQemuThread>("CPU 0/KVM");
  qemu.add(cpu0->tid());
  RealPerfBackend perf;
  Collector collector(qemu.root(), perf, plan_for(perf, qemu.root()));
  collect(collector, {domain(1)});
  cpu0.reset();
  qemu.remove_process();  // QEMU exited (virsh destroy) while libvirt cannot be asked
  Snapshot s = collect_without_libvirt(collector);
  EXPECT_TRUE(s.vms.empty());
  EXPECT_TRUE(s.discovery_errors.empty());
  s = collect(collector, {domain(1)});  // an older answer that still lists it does not bring it back
  EXPECT_TRUE(s.vms.empty());
  EXPECT_TRUE(s.discovery_errors.empty());
}

TEST(Collector, AKilledQemuLeftAsAZombieLeavesInTheSameCycle) {
  QemuFixture qemu;
  auto cpu0 = std::make_unique<FakeQemuThread>("CPU 0/KVM");
  qemu.add(cpu0->tid());
  RealPerfBackend perf;
  Collector collector(qemu.root(), perf, plan_for(perf, qemu.root()));
  collect(collector, {domain(1)});
  cpu0.reset();
  qemu.become_zombie();  // killed while libvirtd (its parent) is down: nobody reaps it yet
  EXPECT_TRUE(collect_without_libvirt(collector).vms.empty());
}

TEST(Collector, ProcReadsThatFailForOtherReasonsThanAnExitKeepTheVm) {
  FileVm vm;  // no perf events: the fake kernel needs fds of its own
  Collector collector(vm.qemu.root(), vm.kernel, plan_for(vm.kernel, vm.qemu.root(), {}));
  collect(collector, {domain(2)});
  rlimit saved{};
  ::getrlimit(RLIMIT_NOFILE, &saved);
  rlimit none{0, saved.rlim_max};  // every new fd (open, opendir) fails EMFILE
  ::setrlimit(RLIMIT_NOFILE, &none);
  Snapshot s = collect(collector, {domain(2)});  // a reconcile: the process and its threads are looked at
  ::setrlimit(RLIMIT_NOFILE, &saved);
  ASSERT_EQ(s.vms.size(), 1u);
  EXPECT_GE((s.read_errors[{"procfs", "EMFILE"}]), 1u);
  vm.run(1'000'000'000);
  s = collect(collector, {domain(2)});
  ASSERT_EQ(s.vms.size(), 1u);
  EXPECT_NEAR(cpu_total(*vcpu(s, 0)), 1.0, 1e-6);  // still measured, nothing lost
}

TEST(Collector, AThreadWhoseFilesCannotBeOpenedIsOpenedAgainLater) {
  FileVm vm;
  Collector collector(vm.qemu.root(), vm.kernel, plan_for(vm.kernel, vm.qemu.root(), {}));
  vm.qemu.add_thread(103, "CPU 2/KVM");
  vm.qemu.break_files(103);
  const auto t0 = Clock::now();
  Snapshot s = collect(collector, {domain(3)}, t0);
  EXPECT_EQ(vcpu(s, 2), nullptr);  // no value, not a zero
  EXPECT_EQ((s.read_errors[{"procfs", "ELOOP"}]), 1u);
  vm.qemu.repair(103);
  vm.qemu.run(103, 1'000'000'000);
  EXPECT_EQ(vcpu(collect(collector, {domain(3)}, t0 + 500ms), 2), nullptr);  // within its backoff
  s = collect(collector, {domain(3)}, t0 + 1500ms);
  ASSERT_NE(vcpu(s, 2), nullptr);
  EXPECT_NEAR(cpu_total(*vcpu(s, 2)), 1.0, 1e-6);
}

TEST(Collector, ExitCountsNeverGoDownWhenTheVmRestartsUnderItsSeries) {
  FileVm vm;
  Collector collector(vm.qemu.root(), vm.kernel, plan_for(vm.kernel, vm.qemu.root(), {}));
  DomainRecord r = domain(2);
  r.exits = {{0, {{"all", 100}}}};
  EXPECT_EQ(vcpu(collect(collector, {r}), 0)->exits.at("all"), 100u);
  r.exits = {};  // NOWAIT: libvirt skipped the busy domain's stats this time
  EXPECT_EQ(vcpu(collect(collector, {r}), 0)->exits.at("all"), 100u);
  r.id = 2;  // restarted within one interval: KVM counts from zero again
  r.exits = {{0, {{"all", 5}}}};
  EXPECT_EQ(vcpu(collect(collector, {r}), 0)->exits.at("all"), 105u);
}

TEST(Collector, AStoppedVmLeavesAndIsNotADiscoveryError) {
  FileVm vm;
  Collector collector(vm.qemu.root(), vm.kernel, plan_for(vm.kernel, vm.qemu.root()));
  collect(collector, {domain(2)});
  vm.qemu.remove_process();  // virsh destroy: QEMU is gone before libvirt's next answer
  for (int i = 0; i < 10; ++i) {  // the thread list is reconciled within 10 cycles
    Snapshot s = collect_without_libvirt(collector);
    if (s.vms.empty()) break;
  }
  Snapshot s = collect(collector, {domain(2)});  // an older answer that still lists it
  EXPECT_TRUE(s.vms.empty());
  s = collect(collector, {});
  EXPECT_TRUE(s.vms.empty());
  EXPECT_TRUE(s.discovery_errors.empty());
  EXPECT_EQ(vm.kernel.open_events(), 0u);
}

TEST(Collector, AMissingProcessIsSearchedWithBackoffAndReportedOnceWhenItPersists) {
  FileQemu qemu{kUuid};
  qemu.remove_process();
  FakeKernel kernel = no_hardware_pmu();
  Collector collector(qemu.root(), kernel, plan_for(kernel, qemu.root()));
  const auto t0 = Clock::now();
  Snapshot s = collect(collector, {domain(1)}, t0);
  EXPECT_FALSE(s.vms.at(0).mapped);
  qemu.create_process();
  qemu.add_thread(101, "CPU 0/KVM");
  s = collect(collector, {domain(1)}, t0 + 500ms);
  EXPECT_FALSE(s.vms.at(0).mapped);  // not searched again before its backoff: no /proc scan per cycle
  s = collect(collector, {domain(1)}, t0 + 1100ms);
  EXPECT_TRUE(s.vms.at(0).mapped);
  EXPECT_TRUE(s.discovery_errors.empty());  // found on the second search

  FileQemu empty{"00000000-0000-0000-0000-000000000009"};
  Collector ghost(empty.root(), kernel, plan_for(kernel, empty.root()));
  for (auto t : {0ms, 1100ms, 3500ms, 7600ms}) s = collect(ghost, {domain(1)}, t0 + t);
  EXPECT_EQ(s.discovery_errors["qemu_process_not_found"], 1u);  // counted once, on a fresher answer
  EXPECT_TRUE(s.vms.at(0).vcpus.empty());
}

TEST(Collector, AReadErrorKeepsTheVcpuAndItsCounts) {
  FileVm vm;
  Collector collector(vm.qemu.root(), vm.kernel, plan_for(vm.kernel, vm.qemu.root()));
  vm.run(1'000'000'000);
  collect(collector, {domain(2)});
  vm.run(1'000'000'000);
  Snapshot before = collect(collector, {domain(2)});
  vm.qemu.corrupt(101);
  Snapshot during = collect(collector, {domain(2)});
  EXPECT_EQ((during.read_errors[{"procfs", "EBADMSG"}]), 1u);
  ASSERT_NE(vcpu(during, 0), nullptr);  // kept, with its counts
  EXPECT_DOUBLE_EQ(cpu_total(*vcpu(during, 0)), cpu_total(*vcpu(before, 0)));
  EXPECT_DOUBLE_EQ(vcpu(during, 0)->events.at(0).value, vcpu(before, 0)->events.at(0).value);
  vm.run(1'000'000'000);  // rewrites the file
  Snapshot after = collect(collector, {domain(2)});
  EXPECT_NEAR(cpu_total(*vcpu(after, 0)), cpu_total(*vcpu(before, 0)) + 1.0, 1e-6);
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
    EXPECT_GT(new_values[key], value) << key.first;  // task-clock's value, enabled and running seconds
    ++compared;
  }
  EXPECT_EQ(compared, 6u);  // 3 series x 2 vCPUs
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
  plan.limits.max_series = 20;  // 2 vCPUs: 10 + 12 per vCPU = 22; per VM 10 + 2 = 12
  Collector collector(vm.qemu.root(), vm.kernel, plan);
  Snapshot s = collect(collector, {domain(2)});
  ASSERT_EQ(s.limit_actions.size(), 1u);
  EXPECT_EQ(s.limit_actions[0].action, "per_vm");
  const size_t opens = vm.kernel.calls().size();
  for (int i = 0; i < 5; ++i) {
    collect(collector, {domain(1)});  // 1 vCPU: 11 series, under 90%: per vCPU again
    collect(collector, {domain(2)});
  }
  EXPECT_EQ(vm.kernel.calls().size(), opens);  // aggregation never reopens counters
}
