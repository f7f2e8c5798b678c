// RLIMIT_NOFILE as a host limit (found by test_resource_limits.py: scrapes hung when the
// collector took every fd).
#include "agent/collect/fd_room.h"

#include <sys/resource.h>

#include <gtest/gtest.h>

using namespace kvmprof;

TEST(FdRoom, RingsComeFirstAndCountersGetTheRest) {
  std::vector<PolicyDemand> demands{{"a", 0, false, {{2, 1, false}}, 4, 1, 5, 4096, {}}};
  EXPECT_EQ(perf_fd_demand(demands), 2u * 4u + 5u);
  Limits limits;
  cap_by_fd_room(limits, demands, 10);
  EXPECT_EQ(limits.max_sampled_threads, 10u);
  EXPECT_EQ(limits.max_counters, 5u);
  limits.max_counters = 3;  // a configured limit that is lower stays
  cap_by_fd_room(limits, demands, 10);
  EXPECT_EQ(limits.max_counters, 3u);
  cap_by_fd_room(limits, demands, 2);  // no room for counters: 1, as 0 would mean no limit
  EXPECT_EQ(limits.max_counters, 1u);
  EXPECT_EQ(limits.max_sampled_threads, 2u);
}

TEST(FdRoom, TheSoftLimitLessWhatTheProcessHoldsAndAReserve) {
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  auto room = perf_fd_room(0, 0);
  auto fewer = perf_fd_room(0, 100);  // 100 procfs files still to open
  auto mine = perf_fd_room(3, 0);     // 3 of the fds held are perf fds: room for them again
  ::setrlimit(RLIMIT_NOFILE, &saved);
  ASSERT_TRUE(room && fewer && mine);
  EXPECT_LT(*room, 1024u - 64u);  // the reserve (1/16 of 1024) and this process's fds
  EXPECT_EQ(*fewer, *room - 100);
  EXPECT_EQ(*mine, *room + 3);
}
