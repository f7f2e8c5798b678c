// The Sampler on the thread lifecycle: rings opened per sampled thread, records counted by mode
// per vCPU and emulator threads, losses, throttling and corrupt records counted, a ring drained
// before it is unmapped, host limits. With the fake kernel writing records into the rings, and
// for real on this test's own threads.
#include "agent/collect/sampler.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "agent/collect/event_plan.h"
#include "tests/support/fake_kernel.h"
#include "tests/support/fixtures.h"

using namespace kvmprof;
using namespace kvmprof::testing;

namespace {

const std::string kVm = "3cd4a570-41dc-49b4-9ff4-5bb95413e660";

std::shared_ptr<const PolicyPlan> sampled(PerfBackend& perf, SampleThreads threads = SampleThreads::kAll,
                                          uint64_t hz = 99, size_t pages = 2) {
  SamplingConfig s;
  s.event = PolicyEvent{std::get<EventSpec>(parse_event_spec("cpu-clock")), GuestMode::kAuto, {}};
  s.frequency = hz;
  s.threads = threads;
  s.buffer_pages = pages;
  PolicyPlan plan = make_policy_plan(Policy{"default", {}, {}, Aggregation::kPerVcpu, {}, 0, {}, {}}, {}, 4);
  plan.sampling = plan_sampling(HostRoot("/"), perf, s, fixture("this-machine"), builtin_quirks());
  return std::make_shared<const PolicyPlan>(std::move(plan));
}

std::shared_ptr<const PolicyPlan> unsampled() {
  return std::make_shared<const PolicyPlan>(make_policy_plan(Policy{"default", {}, {}, Aggregation::kPerVcpu, {}, 0, {}, {}}, {}, 4));
}

uint64_t count(const std::vector<SampleValue>& samples, const std::string& mode) {
  for (const auto& s : samples) {
    if (s.mode == mode) return s.count;
  }
  return 0;
}

VmSample filled(const Sampler& sampler) {
  VmSample out;
  sampler.fill(kVm, out);
  return out;
}

const VcpuSample* vcpu0(const VmSample& vm) { return vm.vcpus.empty() ? nullptr : &vm.vcpus.front(); }

// Every sample the store holds, of every VM.
ProfileWindow everything(const ProfileStore& store) {
  return store.window(0);
}

struct FakeVm {
  FakeKernel kernel = no_hardware_pmu();
  ErrorCounts errors;
  ProfileStore store;
  Sampler sampler{kernel, errors, store};
  VmThread cpu0{kVm, 100, 101, 0u};
  VmThread io{kVm, 100, 102, std::nullopt};

  explicit FakeVm(SampleThreads threads = SampleThreads::kAll, size_t pages = 2) {
    auto plan = sampled(kernel, threads, 99, pages);
    sampler.thread_added(cpu0, plan);
    sampler.thread_added(io, plan);
  }
};

}  // namespace

TEST(Sampler, SamplesCountByModeOnTheirVcpuAndTheEmulatorThreads) {
  FakeVm vm;
  EXPECT_EQ(vm.kernel.rings(), 2u);
  EXPECT_EQ(vm.sampler.fd_count(), 2u);
  vm.kernel.sample(101, PERF_RECORD_MISC_KERNEL, 0xffffffff81000000, 5, {PERF_CONTEXT_KERNEL, 0xffffffff81000000, 0xffffffff81000100});
  vm.kernel.sample(101, PERF_RECORD_MISC_GUEST_KERNEL, 0x7c10, 2, {PERF_CONTEXT_KERNEL, PERF_CONTEXT_USER});
  vm.kernel.sample(102, PERF_RECORD_MISC_USER, 0x55550000, 3);
  vm.sampler.drain();
  VmSample out = filled(vm.sampler);
  ASSERT_NE(vcpu0(out), nullptr);
  EXPECT_EQ(count(vcpu0(out)->samples, "host_kernel"), 5u);
  EXPECT_EQ(count(vcpu0(out)->samples, "guest_kernel"), 2u);
  EXPECT_EQ(count(out.emulator_samples, "host_user"), 3u);
  EXPECT_EQ(out.samples_lost, (std::map<std::string, uint64_t>{{"corrupt", 0}, {"kernel_dropped", 0}, {"ring_full", 0}}));
  EXPECT_EQ(out.sample_throttles, 0u);
  auto window = everything(vm.store);
  ASSERT_EQ(window.samples.size(), 10u);
  ASSERT_EQ(window.stacks.size(), 3u);  // five, two and three samples share a stack
  EXPECT_EQ(window.stacks[window.samples[0].stack].kernel, (std::vector<uint64_t>{0xffffffff81000000, 0xffffffff81000100}));
  EXPECT_EQ(window.samples[0].pid, 100);
  EXPECT_EQ(window.samples[0].nanos, 1'000'000u);  // cpu-clock: the period the fake wrote, in ns
  EXPECT_EQ(window.samples[5].mode, SampleMode::kGuestKernel);
  const SampleStack& guest = window.stacks[window.samples[5].stack];
  EXPECT_EQ(guest.ip, 0x7c10u);
  EXPECT_TRUE(guest.kernel.empty() && guest.user.empty());  // guest samples have no stack
  EXPECT_EQ(window.samples[9].vcpu, std::nullopt);
  ASSERT_EQ(window.vms.size(), 1u);
  EXPECT_EQ(window.vms[0].first, kVm);
  EXPECT_EQ(window.vms[0].second.event, "cpu-clock");
  EXPECT_EQ(window.vms[0].second.period_nanos, 1'000'000'000u / 99);
}

TEST(Sampler, LossesThrottlingAndCorruptRecordsAreCountedAndTheRingGoesOn) {
  FakeVm vm(SampleThreads::kVcpu, 1);  // one data page: 4 KiB
  RecordLayout layout{PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_PERIOD |
                          PERF_SAMPLE_CALLCHAIN, true};
  size_t fit = vm.kernel.sample(101, PERF_RECORD_MISC_KERNEL, 1, 200, {PERF_CONTEXT_KERNEL, 1});  // more than 4 KiB
  ASSERT_LT(fit, 200u);
  vm.sampler.drain();
  vm.kernel.sample(101, PERF_RECORD_MISC_KERNEL, 1, 1);  // preceded by PERF_RECORD_LOST for the rest
  vm.kernel.write_record(101, lost_samples_record(7, layout));
  vm.kernel.write_record(101, throttle_record(true, 1, 1, 1, layout));
  vm.kernel.write_record(101, throttle_record(false, 2, 1, 1, layout));
  vm.sampler.drain();
  VmSample out = filled(vm.sampler);
  EXPECT_EQ(count(vcpu0(out)->samples, "host_kernel"), fit + 1);
  EXPECT_EQ(out.samples_lost["ring_full"], 200 - fit);
  EXPECT_EQ(out.samples_lost["kernel_dropped"], 7u);
  EXPECT_EQ(out.sample_throttles, 1u);
  vm.kernel.write_record(101, raw_record(PERF_RECORD_SAMPLE, 0, 8));  // size 0: the read ends there
  vm.sampler.drain();
  vm.kernel.sample(101, PERF_RECORD_MISC_USER, 1, 3);
  vm.sampler.drain();
  out = filled(vm.sampler);
  EXPECT_EQ(out.samples_lost["corrupt"], 1u);
  EXPECT_EQ(count(vcpu0(out)->samples, "host_user"), 3u);
  EXPECT_EQ(vm.kernel.rings(), 1u);  // threads: vcpu leaves the I/O thread alone
}

TEST(Sampler, AThreadThatGoesIsDrainedBeforeItsRingIsUnmappedAndItsFdClosed) {
  FakeVm vm;
  vm.kernel.sample(101, PERF_RECORD_MISC_KERNEL, 1, 4);
  vm.sampler.thread_gone(vm.cpu0);  // no drain in between: its last records still count
  EXPECT_EQ(vm.kernel.rings(), 1u);
  EXPECT_EQ(vm.sampler.fd_count(), 1u);
  EXPECT_EQ(vm.sampler.mapped_bytes(), 3u * 4096);
  vm.sampler.thread_added(VmThread{kVm, 100, 103, 0u}, nullptr);  // vCPU 0 on a new thread
  vm.kernel.sample(103, PERF_RECORD_MISC_KERNEL, 1, 1);
  vm.sampler.drain();
  EXPECT_EQ(count(vcpu0(filled(vm.sampler))->samples, "host_kernel"), 5u);  // its totals continue
  vm.sampler.thread_gone(vm.io);
  vm.sampler.thread_gone(VmThread{kVm, 100, 103, 0u});
  vm.sampler.vm_gone(kVm);
  EXPECT_EQ(vm.kernel.rings(), 0u);
  EXPECT_EQ(vm.kernel.ring_bytes(), 0u);
  EXPECT_EQ(vm.kernel.open_events(), 0u);
  EXPECT_TRUE(filled(vm.sampler).samples_lost.empty());  // the VM's series are gone
}

TEST(Sampler, APlanWithoutSamplingUnmapsEveryRingAndTurningItOnAgainContinuesTheTotals) {
  FakeVm vm;
  vm.kernel.sample(101, PERF_RECORD_MISC_KERNEL, 1, 3);
  vm.sampler.plan_changed(kVm, unsampled());
  EXPECT_EQ(vm.kernel.rings(), 0u);
  EXPECT_EQ(vm.sampler.fd_count(), 0u);
  EXPECT_EQ(vm.sampler.mapped_bytes(), 0u);
  EXPECT_FALSE(filled(vm.sampler).sample_throttles);  // not sampled: no series
  vm.sampler.plan_changed(kVm, sampled(vm.kernel));
  EXPECT_EQ(vm.kernel.rings(), 2u);
  vm.kernel.sample(101, PERF_RECORD_MISC_KERNEL, 1, 2);
  vm.sampler.drain();
  EXPECT_EQ(count(vcpu0(filled(vm.sampler))->samples, "host_kernel"), 5u);
}

TEST(Sampler, ALockedMemoryRefusalIsReportedAndSetsACeilingForTheLimits) {
  FakeKernel kernel = no_hardware_pmu();
  kernel.mlock_limit = 3 * 4096;  // one ring of 1 + 2 pages
  ErrorCounts errors;
  ProfileStore store;
  Sampler sampler(kernel, errors, store);
  auto plan = sampled(kernel);
  sampler.thread_added(VmThread{kVm, 100, 101, 0u}, plan);
  sampler.thread_added(VmThread{kVm, 100, 102, 1u}, plan);
  auto health = sampler.health().at("cpu-clock");
  EXPECT_EQ(health.open, 1u);
  EXPECT_EQ(health.refused, 1u);
  EXPECT_EQ(health.last_errno, EPERM);
  EXPECT_TRUE(health.mmap_refused);
  EXPECT_EQ(sampler.memlock_ceiling(), 3u * 4096);
  EXPECT_EQ((errors[{"cpu-clock", "EPERM"}]), 1u);
  EXPECT_EQ(kernel.open_events(), 1u);  // the refused ring's event was closed again
  kernel.mlock_limit = SIZE_MAX;
  sampler.drain(Sampler::Clock::now() + std::chrono::seconds(2));  // its backoff is over: opened again
  EXPECT_EQ(sampler.health().at("cpu-clock").open, 2u);
}

TEST(Sampler, AVmItsPolicyNoLongerSamplesAndAStoppedVmLeaveNoSamples) {
  FakeVm vm(SampleThreads::kVcpu, 64);
  vm.kernel.sample(101, PERF_RECORD_MISC_KERNEL, 1, 30);
  const std::string other = "00000000-0000-0000-0000-000000000002";
  vm.sampler.thread_added(VmThread{other, 200, 201, 0u}, sampled(vm.kernel, SampleThreads::kVcpu, 99, 64));
  vm.kernel.sample(201, PERF_RECORD_MISC_KERNEL, 1, 20);
  vm.sampler.drain();
  EXPECT_EQ(everything(vm.store).samples.size(), 50u);
  vm.sampler.plan_changed(kVm, unsampled());  // sampling off: its samples go
  EXPECT_EQ(everything(vm.store).samples.size(), 20u);
  vm.sampler.thread_gone(VmThread{other, 200, 201, 0u});
  vm.sampler.vm_gone(other);
  EXPECT_TRUE(everything(vm.store).samples.empty());
  EXPECT_EQ(vm.store.stats().stacks, 0u);
}

// For real, on this test's own threads: cpu-clock fires every 1/F of the thread's CPU time
// (kernel/events/core.c perf_swevent_init_hrtimer: period = NSEC_PER_SEC / sample_freq), so a
// thread is expected to get F x its CPU seconds samples. Timer expiry is checked at ticks and
// hrtimer slack, so a few percent either way is normal; the bound is 20% for a loaded CI host.
namespace {

double cpu_seconds(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/schedstat");
  uint64_t ns = 0;
  in >> ns;
  return static_cast<double>(ns) / 1e9;
}

[[gnu::noinline]] uint64_t spin_in_user(const std::atomic<bool>& stop) {
  uint64_t x = 1;
  while (!stop.load(std::memory_order_relaxed)) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  return x;
}

void read_zeros(const std::atomic<bool>& stop) {
  static char buf[1 << 16];
  int fd = ::open("/dev/zero", O_RDONLY);
  // The raw syscall: a sanitizer's read() interceptor would add user time of its own.
  while (!stop.load(std::memory_order_relaxed)) ::syscall(SYS_read, fd, buf, sizeof buf);
  ::close(fd);
}

}  // namespace

TEST(SamplerOnRealThreads, AUserSpinIsHostUserAndASyscallLoopIsHostKernelAtTheFrequency) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (kernel samples with perf_event_paranoid 2)";
  RealPerfBackend perf;
  ErrorCounts errors;
  ProfileStore store;
  Sampler sampler(perf, errors, store);
  std::atomic<bool> stop{false};
  std::atomic<pid_t> user_tid{0}, kernel_tid{0};
  std::thread user([&] {
    user_tid = static_cast<pid_t>(::syscall(SYS_gettid));
    spin_in_user(stop);
  });
  std::thread kernel([&] {
    kernel_tid = static_cast<pid_t>(::syscall(SYS_gettid));
    read_zeros(stop);
  });
  while (!user_tid || !kernel_tid) std::this_thread::yield();
  constexpr uint64_t kHz = 499;
  auto plan = sampled(perf, SampleThreads::kAll, kHz, 8);
  sampler.thread_added(VmThread{kVm, ::getpid(), user_tid, 0u}, plan);
  sampler.thread_added(VmThread{kVm, ::getpid(), kernel_tid, 1u}, plan);
  const double user0 = cpu_seconds(user_tid), kernel0 = cpu_seconds(kernel_tid);
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    sampler.drain();
  }
  const double user_cpu = cpu_seconds(user_tid) - user0, kernel_cpu = cpu_seconds(kernel_tid) - kernel0;
  sampler.thread_gone(VmThread{kVm, ::getpid(), user_tid, 0u});
  sampler.thread_gone(VmThread{kVm, ::getpid(), kernel_tid, 1u});
  stop = true;
  user.join();
  kernel.join();
  VmSample out = filled(sampler);
  ASSERT_EQ(out.vcpus.size(), 0u);  // no thread now: the totals are kept, not shown
  std::map<std::pair<unsigned, SampleMode>, double> by;
  double total[2] = {0, 0};
  for (const auto& s : everything(store).samples) {
    by[{*s.vcpu, s.mode}] += 1;
    total[*s.vcpu] += 1;
  }
  std::printf("user spin: %.0f samples in %.2f s CPU (expected %.0f), %.0f host_user\n", total[0], user_cpu,
              kHz * user_cpu, by[{0, SampleMode::kHostUser}]);
  std::printf("syscall loop: %.0f samples in %.2f s CPU (expected %.0f), %.0f host_kernel\n", total[1], kernel_cpu,
              kHz * kernel_cpu, by[{1, SampleMode::kHostKernel}]);
  EXPECT_NEAR(total[0], kHz * user_cpu, 0.2 * kHz * user_cpu);
  EXPECT_NEAR(total[1], kHz * kernel_cpu, 0.2 * kHz * kernel_cpu);
  const double user_mode = by[{0, SampleMode::kHostUser}], kernel_mode = by[{1, SampleMode::kHostKernel}];
  EXPECT_GT(user_mode, 0.95 * total[0]);
  EXPECT_GT(kernel_mode, 0.7 * total[1]);
  EXPECT_EQ(sampler.mapped_bytes(), 0u);
}

// A thread that exits leaves its event polling EPOLLHUP for good (kernel/events/core.c
// perf_poll); the sampler thread must go back to waiting instead of spinning on it until the
// collection cycle notices the exit.
TEST(SamplerOnRealThreads, AnExitedThreadDoesNotKeepTheSamplerThreadAwake) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  RealPerfBackend perf;
  ErrorCounts errors;
  ProfileStore store;
  Sampler sampler(perf, errors, store);
  std::atomic<pid_t> tid{0};
  std::atomic<bool> stop{false};
  std::thread worker([&] {
    tid = static_cast<pid_t>(::syscall(SYS_gettid));
    spin_in_user(stop);
  });
  while (!tid) std::this_thread::yield();
  sampler.thread_added(VmThread{kVm, ::getpid(), tid, 0u}, sampled(perf, SampleThreads::kAll, 999, 1));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // past the watermark: a wakeup is due
  stop = true;
  worker.join();
  sampler.wait_and_drain(std::chrono::milliseconds(100));  // drains, sees EPOLLHUP, stops watching
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) sampler.wait_and_drain(std::chrono::milliseconds(100));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(250));  // each waited its timeout
  EXPECT_GT(everything(store).samples.size(), 0u);  // its samples, drained (how many depends on its CPU share)
  sampler.thread_gone(VmThread{kVm, ::getpid(), tid, 0u});
  EXPECT_EQ(sampler.fd_count(), 0u);
}
