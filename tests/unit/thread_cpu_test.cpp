#include "agent/collect/thread_cpu.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

using namespace kvmprof;

namespace {
constexpr uint64_t kTick = 10'000'000;  // USER_HZ 100
uint64_t sum(const std::array<uint64_t, 3>& a) { return a[0] + a[1] + a[2]; }
}  // namespace

TEST(ThreadCpu, SplitsByTicksAndSumsExactlyToSchedstat) {
  ThreadCpu cpu(kTick);
  // 1 s run: 60 ticks guest (inside utime 70), 30 ticks system.
  cpu.update({1'000'000'000, 5'000, 1}, {70, 30, 60});
  ASSERT_TRUE(cpu.trusted());
  EXPECT_EQ(sum(cpu.split_ns()), 1'000'000'000u);
  EXPECT_EQ(cpu.split_ns()[kGuest], 600'000'000u);
  EXPECT_EQ(cpu.split_ns()[kHostKernel], 300'000'000u);
  EXPECT_EQ(cpu.split_ns()[kHostUser], 100'000'000u);
  EXPECT_EQ(cpu.wait_ns(), 5'000u);
}

TEST(ThreadCpu, ReportsOnlyTheTotalWhenTicksStayZeroWhileSchedstatRuns) {
  // Seen on a nested KVM host: schedstat says 8 s, the thread's stat says 0/0/0.
  ThreadCpu cpu(kTick);
  cpu.update({8'000'000'000, 0, 10}, {0, 0, 0});
  EXPECT_FALSE(cpu.trusted());
  EXPECT_EQ(cpu.total_ns(), 8'000'000'000u);
  EXPECT_EQ(cpu.unsplit_ns(), 8'000'000'000u);
}

TEST(ThreadCpu, UntrustedIsStickyAndKeepsTheSplitSoFar) {
  ThreadCpu cpu(kTick);
  cpu.update({100'000'000, 0, 1}, {0, 10, 0});
  ASSERT_TRUE(cpu.trusted());
  cpu.update({5'000'000'000, 0, 2}, {0, 10, 0});
  EXPECT_FALSE(cpu.trusted());
  cpu.update({5'100'000'000, 0, 3}, {0, 510, 0});  // consistent again: still untrusted
  EXPECT_FALSE(cpu.trusted());
  EXPECT_EQ(cpu.split_ns()[kHostKernel], 100'000'000u);
  EXPECT_EQ(cpu.unsplit_ns(), 5'000'000'000u);
}

TEST(ThreadCpu, SmallThreadsWithinOneTickAreConsistent) {
  ThreadCpu cpu(kTick);
  cpu.update({2'000'000, 0, 1}, {0, 0, 0});  // 2 ms, no tick yet
  EXPECT_TRUE(cpu.trusted());
  EXPECT_EQ(sum(cpu.split_ns()), 0u);  // nothing to split by yet: not invented
}

TEST(ThreadCpu, ModesNeverDecreaseAndAlwaysSumToTotal) {
  std::mt19937_64 rng(42);
  ThreadCpu cpu(kTick);
  uint64_t run = 0;
  TaskTicks ticks{};
  std::array<uint64_t, 3> prev{};
  for (int i = 0; i < 2000; ++i) {
    uint64_t g = rng() % 5, s = rng() % 5, u = rng() % 5;
    ticks.guest_time += g;
    ticks.utime += g + u;
    ticks.stime += s;
    run = std::max(run, (ticks.utime + ticks.stime) * kTick + rng() % kTick);  // schedstat never goes back
    cpu.update({run, 0, 0}, ticks);
    ASSERT_TRUE(cpu.trusted());
    for (size_t m = 0; m < 3; ++m) ASSERT_GE(cpu.split_ns()[m], prev[m]) << "mode " << m;
    prev = cpu.split_ns();
    ASSERT_EQ(sum(prev), run);
  }
}

TEST(ThreadCpu, HostUserExcludesGuestTimeCountedInUtime) {
  auto split = tick_split({100, 20, 80});
  EXPECT_EQ(split[kGuest], 80u);
  EXPECT_EQ(split[kHostUser], 20u);
  EXPECT_EQ(split[kHostKernel], 20u);
  EXPECT_EQ(tick_split({5, 0, 9})[kHostUser], 0u);  // guest > utime: clamped, never negative
}
