// The fake kernel's own rules, so tests built on it stand on what the kernel really does.
#include "tests/support/fake_kernel.h"

#include <gtest/gtest.h>

#include <cstring>

using namespace kvmprof;
using namespace kvmprof::testing;

namespace {

perf_event_attr hardware(uint64_t config, uint32_t pmu) {
  perf_event_attr a{};
  a.size = sizeof(a);
  a.type = PERF_TYPE_HARDWARE;
  a.config = config | (uint64_t{pmu} << PERF_PMU_TYPE_SHIFT);
  return a;
}

perf_event_attr software(uint64_t config) {
  perf_event_attr a{};
  a.size = sizeof(a);
  a.type = PERF_TYPE_SOFTWARE;
  a.config = config;
  return a;
}

int open_errno(FakeKernel& k, perf_event_attr a, pid_t tid, int group_fd, Fd* out = nullptr) {
  auto fd = k.open(a, tid, -1, group_fd);
  if (fd.ok() && out) *out = std::move(*fd);
  return fd.ok() ? 0 : fd.error().err;
}

std::vector<uint64_t> words(FakeKernel& k, const Fd& fd) {
  std::vector<uint64_t> w(16);
  auto n = k.read(fd, std::as_writable_bytes(std::span(w)));
  w.resize(n.ok() ? *n / 8 : 0);
  return w;
}

}  // namespace

TEST(FakeKernel, RefusesAGroupThatMixesHardwarePmus) {
  FakeKernel k = linux_6_1_intel_hybrid();
  Fd leader;
  ASSERT_EQ(open_errno(k, hardware(PERF_COUNT_HW_CPU_CYCLES, kCorePmuType), 7, -1, &leader), 0);
  EXPECT_EQ(open_errno(k, hardware(PERF_COUNT_HW_CPU_CYCLES, kAtomPmuType), 7, leader.get()), EINVAL);
  Fd same, sw;
  EXPECT_EQ(open_errno(k, hardware(PERF_COUNT_HW_INSTRUCTIONS, kCorePmuType), 7, leader.get(), &same), 0);
  EXPECT_EQ(open_errno(k, software(PERF_COUNT_SW_TASK_CLOCK), 7, leader.get(), &sw), 0);  // software joins any group
  EXPECT_EQ(open_errno(k, hardware(PERF_COUNT_HW_CPU_CYCLES, kCorePmuType), 8, leader.get()), EINVAL);  // another task
}

TEST(FakeKernel, RefusesAGroupLargerThanThePmuCounters) {
  FakeKernel k = linux_6_1_intel();  // 4 counters per group
  std::vector<Fd> fds(4);
  ASSERT_EQ(open_errno(k, hardware(PERF_COUNT_HW_CPU_CYCLES, 0), 7, -1, &fds[0]), 0);
  for (int i = 1; i < 4; ++i) ASSERT_EQ(open_errno(k, hardware(PERF_COUNT_HW_INSTRUCTIONS, 0), 7, fds[0].get(), &fds[i]), 0);
  EXPECT_EQ(open_errno(k, hardware(PERF_COUNT_HW_BRANCH_MISSES, 0), 7, fds[0].get()), EINVAL);
  fds[3].reset();  // a member closed: there is room again
  EXPECT_EQ(open_errno(k, hardware(PERF_COUNT_HW_BRANCH_MISSES, 0), 7, fds[0].get(), &fds[3]), 0);
}

TEST(FakeKernel, ThreadsThatExitedOrMayNotBeTracedAreRefused) {
  FakeKernel k = no_hardware_pmu();
  k.exit_thread(7);
  k.deny(8);
  EXPECT_EQ(open_errno(k, software(PERF_COUNT_SW_TASK_CLOCK), 7, -1), ESRCH);
  EXPECT_EQ(open_errno(k, software(PERF_COUNT_SW_TASK_CLOCK), 8, -1), EACCES);
  k.allow(8);
  EXPECT_EQ(open_errno(k, software(PERF_COUNT_SW_TASK_CLOCK), 8, -1), 0);
}

TEST(FakeKernel, AReusedFdNumberIsANewEventAndClosedMembersLeaveTheGroup) {
  FakeKernel k = no_hardware_pmu();
  k.count_for = [](const perf_event_attr& a) { return a.config == PERF_COUNT_SW_TASK_CLOCK ? 5 : 7; };
  Fd leader, member;
  ASSERT_EQ(open_errno(k, software(PERF_COUNT_SW_TASK_CLOCK), 7, -1, &leader), 0);
  ASSERT_EQ(open_errno(k, software(PERF_COUNT_SW_PAGE_FAULTS), 7, leader.get(), &member), 0);
  EXPECT_EQ(words(k, leader).at(0), 2u);
  const int old_number = member.get();
  member.reset();
  EXPECT_EQ(words(k, leader).at(0), 1u);  // the closed member left the group
  Fd again;
  ASSERT_EQ(open_errno(k, software(PERF_COUNT_SW_PAGE_FAULTS), 9, -1, &again), 0);
  ASSERT_EQ(again.get(), old_number);  // the kernel hands out the lowest free number
  auto w = words(k, again);
  ASSERT_EQ(w.size(), 5u);
  EXPECT_EQ(w[0], 1u);
  EXPECT_EQ(w[3], 7u);  // the new event's count, not the old member's group
  EXPECT_EQ(w[4], *k.event_id(again));
}

TEST(FakeKernel, CountsGrowWhileThreadsRunAndShowMultiplexing) {
  FakeKernel k = no_hardware_pmu();
  k.count_for = [](const perf_event_attr&) { return 1000; };  // 1000 at open, then 1000 per second on the PMU
  Fd fd;
  ASSERT_EQ(open_errno(k, software(PERF_COUNT_SW_TASK_CLOCK), 7, -1, &fd), 0);
  k.run(7, 2'000'000'000, 1'000'000'000);
  auto w = words(k, fd);
  EXPECT_EQ(w[1], 3'000'000'000u);  // enabled
  EXPECT_EQ(w[2], 2'000'000'000u);  // running
  EXPECT_EQ(w[3], 2000u);
  k.exit_thread(7);
  k.run(7, 1'000'000'000, 1'000'000'000);
  EXPECT_EQ(words(k, fd)[3], 2000u);  // an exited thread's events keep their last values
}
