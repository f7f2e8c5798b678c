// The collector on real threads of this test process, seen through a host-root fixture that
// makes them look like a QEMU process: /proc/4242/cmdline holds "-uuid U" and
// /proc/4242/task/TID links to this process's real thread directories. perf opens on the
// real thread ids, so counts, exits and fds are the kernel's own.
#include "agent/collect/collector.h"
#include "agent/system/host_probe.h"
#include "tests/support/fake_qemu.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

using namespace kvmprof;
using namespace kvmprof::testing;
namespace fs = std::filesystem;

namespace {

size_t open_fds() {
  return static_cast<size_t>(std::distance(fs::directory_iterator("/proc/self/fd"), fs::directory_iterator()));
}

// A default policy counting task-clock, planned for this host as the agent plans it.
CollectorPlan events() {
  RealPerfBackend perf;
  HostModel host = probe_host(HostRoot("/"));
  Policy policy;
  policy.name = "default";
  policy.events = {{std::get<EventSpec>(parse_event_spec("task-clock")), GuestMode::kAuto, {}}};
  auto planned = plan_events(HostRoot("/"), perf, policy.events, host, builtin_quirks());
  return CollectorPlan{{}, make_policy_plan(policy, std::move(planned), 4), {}, std::chrono::milliseconds(0)};  // read every VM on every collect()
}

DomainRecord domain(unsigned vcpus, int id = 1) { return DomainRecord{"vm \"1\"", kUuid, id, vcpus, "", {}, {}}; }

const VcpuSample* vcpu(const Snapshot& s, unsigned index) {
  for (const auto& v : s.vms.at(0).vcpus) {
    if (v.index == index) return &v;
  }
  return nullptr;
}

}  // namespace

TEST(Collector, MapsVcpuThreadsByNameAndCountsThemForReal) {
  QemuFixture qemu;
  FakeQemuThread cpu0("CPU 0/KVM"), cpu1("CPU 1/KVM"), io("IO mon_iothread");
  for (pid_t tid : {cpu0.tid(), cpu1.tid(), io.tid()}) qemu.add(tid);
  RealPerfBackend perf;
  Collector collector(qemu.root(), perf, events());
  std::vector<DomainRecord> domains{domain(2)};
  collector.collect(domains);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  Snapshot s = collector.collect(domains);
  ASSERT_EQ(s.vms.size(), 1u);
  EXPECT_TRUE(s.vms[0].mapped);
  ASSERT_EQ(s.vms[0].vcpus.size(), 2u);
  ASSERT_EQ(vcpu(s, 1)->events.size(), 1u);
  EXPECT_EQ(vcpu(s, 1)->events[0].event, "task-clock");
  EXPECT_GT(vcpu(s, 1)->events[0].value, 10e6);  // > 10 ms of a spinning thread in 100 ms
  double cpu = 0;
  for (const auto& m : vcpu(s, 0)->cpu) cpu += m.seconds;
  EXPECT_GT(cpu, 0.01);
  EXPECT_FALSE(s.vms[0].emulator_cpu.empty());
}

TEST(Collector, AThreadExitingMidCycleIsCountedAndItsFdsClosed) {
  QemuFixture qemu;
  FakeQemuThread cpu0("CPU 0/KVM");
  auto cpu1 = std::make_unique<FakeQemuThread>("CPU 1/KVM");
  qemu.add(cpu0.tid());
  qemu.add(cpu1->tid());
  RealPerfBackend perf;
  const size_t baseline = open_fds();
  Collector collector(qemu.root(), perf, events());
  std::vector<DomainRecord> domains{domain(2)};
  collector.collect(domains);
  const size_t with_two = open_fds();
  EXPECT_EQ(with_two - baseline, 2u * 3u);  // per vCPU: schedstat, stat, one counter
  cpu1.reset();  // the thread exits; its directory link now dangles
  Snapshot s = collector.collect(domains);
  EXPECT_EQ(s.vms.at(0).vcpus.size(), 1u);
  EXPECT_FALSE(s.vms[0].mapped);
  EXPECT_GE((s.read_errors[{"procfs", "ESRCH"}] + s.read_errors[{"procfs", "ENOENT"}]), 1u);
  EXPECT_EQ(open_fds() - baseline, 3u);
  collector.collect(std::vector<DomainRecord>{});  // the VM stops
  EXPECT_EQ(open_fds(), baseline);
}

TEST(Collector, ManyStartsAndStopsLeakNoFds) {
  QemuFixture qemu;
  FakeQemuThread cpu0("CPU 0/KVM");
  qemu.add(cpu0.tid());
  RealPerfBackend perf;
  Collector collector(qemu.root(), perf, events());
  const size_t baseline = open_fds();
  for (int i = 0; i < 200; ++i) {
    Snapshot s = collector.collect(std::vector<DomainRecord>{domain(1, i)});  // new id: restarted
    ASSERT_EQ(s.vms.size(), 1u);
    collector.collect(std::vector<DomainRecord>{});
    ASSERT_EQ(open_fds(), baseline) << "cycle " << i;
  }
}

TEST(Collector, KeepsMeasuringKnownVmsWhileLibvirtIsDown) {
  QemuFixture qemu;
  FakeQemuThread cpu0("CPU 0/KVM");
  qemu.add(cpu0.tid());
  RealPerfBackend perf;
  Collector collector(qemu.root(), perf, events());
  collector.collect(std::vector<DomainRecord>{domain(1)});
  Snapshot s = collector.collect(std::nullopt);
  ASSERT_EQ(s.vms.size(), 1u);
  EXPECT_EQ(s.vms[0].vcpus.size(), 1u);
  for (const auto& src : s.sources) {
    if (src.source == "libvirt_vcpu_exits") {
      EXPECT_FALSE(src.up);
    }
  }
}

TEST(Collector, AVmWithoutItsProcessIsReportedNotInvented) {
  QemuFixture qemu;
  RealPerfBackend perf;
  Collector collector(qemu.root(), perf, events());
  DomainRecord other{"ghost", "00000000-0000-0000-0000-000000000000", 3, 1, "", {}, {}};
  Snapshot s = collector.collect(std::vector<DomainRecord>{other});
  ASSERT_EQ(s.vms.size(), 1u);
  EXPECT_FALSE(s.vms[0].mapped);
  EXPECT_TRUE(s.vms[0].vcpus.empty());
  EXPECT_EQ(s.discovery_errors["qemu_process_not_found"], 1u);
  collector.collect(std::vector<DomainRecord>{other});
  EXPECT_EQ(collector.collect(std::vector<DomainRecord>{other}).discovery_errors["qemu_process_not_found"], 1u);
}

TEST(Collector, EmfileIsCountedAndNothingCrashes) {
  QemuFixture qemu;
  FakeQemuThread cpu0("CPU 0/KVM");
  qemu.add(cpu0.tid());
  RealPerfBackend perf;
  Collector collector(qemu.root(), perf, events());
  rlimit saved{};
  ::getrlimit(RLIMIT_NOFILE, &saved);
  // New fds take the lowest free numbers: allow exactly the next two (the procfs files).
  int first = ::dup(0), second = ::dup(0);
  ::close(first);
  ::close(second);
  rlimit low{static_cast<rlim_t>(second) + 1, saved.rlim_max};
  ::setrlimit(RLIMIT_NOFILE, &low);
  Snapshot s = collector.collect(std::vector<DomainRecord>{domain(1)});
  ::setrlimit(RLIMIT_NOFILE, &saved);
  EXPECT_EQ((s.perf_open_errors[{"task-clock", "EMFILE"}]), 1u);
  ASSERT_EQ(s.vms.at(0).vcpus.size(), 1u);
  EXPECT_TRUE(s.vms[0].vcpus[0].events.empty());  // no counter: no series, not a zero
}
