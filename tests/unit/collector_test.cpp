// The collector and the thread lifecycle on real threads of this test process (QemuFixture: a
// host root that makes them look like a QEMU process, counted by the real kernel), and on a
// file-backed QEMU with the fake kernel where a test needs exact times, read errors or exits on
// demand: VMs and threads that come and go, processes that exit, reads that fail.
#include "agent/collect/collector.h"

#include <gtest/gtest.h>

#include <thread>

#include "tests/support/collector_fixture.h"

using namespace kvmprof;
using namespace kvmprof::testing;
using namespace std::chrono_literals;

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
  Collector collector(qemu.root(), perf, plan_for(perf, qemu.root()));
  const size_t baseline = open_fds();  // the sampler's epoll and wake fds are the collector's own
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
  RealVm vm;
  Collector& collector = *vm.collector;
  const size_t baseline = open_fds();
  for (int i = 0; i < 200; ++i) {
    Snapshot s = collect(collector, {domain(1, i)});  // new id: restarted
    ASSERT_EQ(s.vms.size(), 1u);
    collect(collector, {});
    ASSERT_EQ(open_fds(), baseline) << "cycle " << i;
  }
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

TEST(Collector, AVmWhoseQemuExitedLeavesInTheSameCycle) {
  // QEMU gone (virsh destroy), or killed and left a zombie because libvirtd, its parent, is down:
  // either way the VM leaves in the cycle that finds its threads gone, while libvirt cannot be asked.
  for (bool zombie : {false, true}) {
    SCOPED_TRACE(zombie ? "zombie" : "gone");
    RealVm vm;
    Collector& collector = *vm.collector;
    collect(collector, {domain(1)});
    vm.cpu0.reset();
    zombie ? vm.qemu.become_zombie() : vm.qemu.remove_process();
    Snapshot s = collect_without_libvirt(collector);
    EXPECT_TRUE(s.vms.empty());
    s = collect(collector, {domain(1)});  // an older answer that still lists it does not bring it back
    EXPECT_TRUE(s.vms.empty());
    EXPECT_TRUE(s.discovery_errors.empty());
  }
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
