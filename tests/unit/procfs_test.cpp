#include "agent/system/procfs.h"

#include <gtest/gtest.h>

using namespace kvmprof;

TEST(Procfs, ParsesStatWithSpacesAndParensInComm) {
  std::string line = "6047 (CPU 0/KVM) (x) R 1 6041 6041 0 -1 4194624 0 0 0 0 250 30";
  for (int f = 16; f <= 42; ++f) line += " 0";
  line += " 200 0\n";  // 43 guest_time, 44 cguest_time
  auto ticks = parse_task_stat(line);
  ASSERT_TRUE(ticks.ok()) << ticks.error().message();
  EXPECT_EQ(ticks->utime, 250u);
  EXPECT_EQ(ticks->stime, 30u);
  EXPECT_EQ(ticks->guest_time, 200u);
}

TEST(Procfs, RejectsTruncatedStat) {
  EXPECT_FALSE(parse_task_stat("12 (qemu) R 1 2 3").ok());
  EXPECT_FALSE(parse_task_stat("garbage without parens").ok());
  EXPECT_FALSE(parse_task_stat("").ok());
}

TEST(Procfs, ParsesSchedstat) {
  auto s = parse_schedstat("3036236545 4140792 79\n");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->run_ns, 3036236545u);
  EXPECT_EQ(s->wait_ns, 4140792u);
  EXPECT_EQ(s->slices, 79u);
  EXPECT_FALSE(parse_schedstat("12 x 3").ok());
  EXPECT_FALSE(parse_schedstat("12").ok());
}

TEST(Procfs, SplitsCmdline) {
  std::string text("qemu\0-uuid\0abc\0", 15);
  auto argv = parse_cmdline(text);
  ASSERT_EQ(argv.size(), 3u);
  EXPECT_EQ(argv[1], "-uuid");
  EXPECT_EQ(argv[2], "abc");
}

TEST(Procfs, ReadsVcpuIndexFromQemuThreadName) {
  EXPECT_EQ(vcpu_index_from_comm("CPU 0/KVM\n"), 0u);
  EXPECT_EQ(vcpu_index_from_comm("CPU 12/TCG"), 12u);
  EXPECT_FALSE(vcpu_index_from_comm("IO mon_iothread"));
  EXPECT_FALSE(vcpu_index_from_comm("CPU x/KVM"));
  EXPECT_FALSE(vcpu_index_from_comm("CPU 1"));
  EXPECT_FALSE(vcpu_index_from_comm("qemu-system-x86"));
}

TEST(Procfs, ReadsTheStateLetterAfterTheLastParenthesis) {
  EXPECT_EQ(parse_task_state("4242 (qemu) S 1 2 3"), 'S');
  EXPECT_EQ(parse_task_state("4242 (CPU 0/KVM) Z 1"), 'Z');
  EXPECT_EQ(parse_task_state("4242 (a) b) (c) R 1"), 'R');
  EXPECT_EQ(parse_task_state("4242 (qemu)"), std::nullopt);
  EXPECT_EQ(parse_task_state("garbage"), std::nullopt);
}
