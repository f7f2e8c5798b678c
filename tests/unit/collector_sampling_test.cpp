// Sampling through the collector: samples exported per vCPU and emulator thread with their
// source, event_info for the sampling decision, and the lowest priority stopping sampling when
// the kernel refuses locked memory for rings. File-backed QEMU, fake kernel writing records.
#include <gtest/gtest.h>

#include "agent/collect/collector.h"
#include "tests/support/collector_fixture.h"
#include "tests/support/fixtures.h"

using namespace kvmprof;
using namespace kvmprof::testing;
using namespace std::chrono_literals;

namespace {

// The default policy counts task-clock and samples cpu-clock on every thread.
CollectorPlan sampling_plan(PerfBackend& perf, const HostRoot& root) {
  CollectorPlan plan = plan_for(perf, root, {"task-clock"});
  SamplingConfig s;
  s.event = PolicyEvent{std::get<EventSpec>(parse_event_spec("cpu-clock")), GuestMode::kAuto, {}};
  s.buffer_pages = 2;
  plan.default_policy.sampling = plan_sampling(root, perf, s, fixture("this-machine"), builtin_quirks());
  return plan;
}

uint64_t samples(const std::vector<SampleValue>& values, const std::string& mode) {
  for (const auto& v : values) {
    if (v.mode == mode) return v.count;
  }
  return 0;
}

}  // namespace

TEST(CollectorSampling, SamplesAreExportedPerVcpuAndEmulatorWithTheirSourceAndDecision) {
  FileVm vm;
  Collector collector(vm.qemu.root(), vm.kernel, sampling_plan(vm.kernel, vm.qemu.root()));
  Snapshot s = collect(collector, {domain(2)});
  EXPECT_EQ(vm.kernel.rings(), 3u);  // both vCPUs and the I/O thread (threads: all)
  EXPECT_TRUE(source(s, "sampling:cpu-clock").up);
  vm.kernel.sample(101, PERF_RECORD_MISC_KERNEL, 1, 4);
  vm.kernel.sample(102, PERF_RECORD_MISC_GUEST_USER, 0x401000, 1);
  vm.kernel.sample(103, PERF_RECORD_MISC_USER, 1, 2);
  s = collect(collector, {domain(2)});
  EXPECT_EQ(samples(vcpu(s, 0)->samples, "host_kernel"), 4u);
  EXPECT_EQ(samples(vcpu(s, 1)->samples, "guest_user"), 1u);
  EXPECT_EQ(samples(s.vms[0].emulator_samples, "host_user"), 2u);
  EXPECT_EQ(s.sample_ring_bytes, 3u * 3 * 4096);
  auto info = std::find_if(s.event_info.begin(), s.event_info.end(), [](const auto& e) { return e.use == "sample"; });
  ASSERT_NE(info, s.event_info.end());
  EXPECT_EQ(info->event, "cpu-clock");
  EXPECT_NE(info->attrs.find("sample_freq=99 sample_id_all=1"), std::string::npos) << info->attrs;
  series(s);  // no duplicate series
  collect(collector, {});  // the VM stops: every ring is drained and unmapped
  EXPECT_EQ(vm.kernel.rings(), 0u);
  EXPECT_EQ(collector.sampler().fd_count(), 0u);
}

// Which policy stops first is the limits' priority order (Limits.OverASamplingLimit...); here
// the one sampling policy meets the ceiling the kernel's refusal sets.
TEST(CollectorSampling, WhenLockedMemoryRunsOutSamplingStopsAsALimitActionAndSaysWhy) {
  FileVm vm;
  vm.kernel.mlock_limit = 2 * 3 * 4096;  // two rings of 1 + 2 pages; the VM has three threads
  Collector collector(vm.qemu.root(), vm.kernel, sampling_plan(vm.kernel, vm.qemu.root()));
  const auto t0 = Clock::now();
  // The third ring is refused; in the same cycle its 2-ring ceiling applies to the limits, and
  // 3 rings do not fit it: the policy stops sampling and its rings are unmapped.
  Snapshot s = collect(collector, {domain(2)}, t0);
  bool stopped = std::any_of(s.limit_actions.begin(), s.limit_actions.end(),
                             [](const auto& a) { return a.action == "sampling_off" && a.event == "cpu-clock"; });
  EXPECT_TRUE(stopped);
  EXPECT_EQ(vm.kernel.rings(), 0u);
  EXPECT_EQ((s.perf_open_errors[{"cpu-clock", "EPERM"}]), 1u);
  s = collect(collector, {domain(2)}, t0 + 1s);
  EXPECT_FALSE(source(s, "sampling:cpu-clock").up);
  EXPECT_NE(source(s, "sampling:cpu-clock").reason.find("a host limit stopped it"), std::string::npos);
  EXPECT_FALSE(s.vms.at(0).sample_throttles);  // not sampled: no sampling series
}

TEST(CollectorSampling, ThreadsQemuStartsLaterCountAgainstTheSamplingLimits) {
  FileVm vm;
  CollectorPlan plan = sampling_plan(vm.kernel, vm.qemu.root());
  plan.limits.max_sampled_threads = 3;
  Collector collector(vm.qemu.root(), vm.kernel, plan);
  const auto t0 = Clock::now();
  Snapshot s = collect(collector, {domain(2)}, t0);
  EXPECT_EQ(vm.kernel.rings(), 3u);  // 3 of 3 threads
  EXPECT_TRUE(s.limit_actions.empty());
  vm.qemu.add_thread(104, "worker");
  s = collect(collector, {domain(2)}, t0 + 1s);  // the reconcile finds it: 4 > 3
  ASSERT_EQ(s.limit_actions.size(), 1u);
  EXPECT_EQ(s.limit_actions[0].action, "sampling_off");
  EXPECT_EQ(vm.kernel.rings(), 0u);
}

TEST(CollectorSampling, ASamplingEventTheKernelRefusesEverywhereIsFailedWithTheErrno) {
  FileVm vm;
  for (pid_t tid : {101, 102, 103}) vm.kernel.deny(tid);
  Collector collector(vm.qemu.root(), vm.kernel, sampling_plan(vm.kernel, vm.qemu.root()));
  Snapshot s = collect(collector, {domain(2)});
  EXPECT_FALSE(source(s, "sampling:cpu-clock").up);
  auto info = std::find_if(s.event_info.begin(), s.event_info.end(), [](const auto& e) { return e.use == "sample"; });
  ASSERT_NE(info, s.event_info.end());
  EXPECT_EQ(info->status, "failed");
  EXPECT_NE(info->reason.find("EACCES"), std::string::npos) << info->reason;
  EXPECT_NE(info->reason.find("CAP_PERFMON"), std::string::npos);
}
