#include "agent/discovery/hypervisor.h"

#include <gtest/gtest.h>


using namespace kvmprof;

TEST(LibvirtStats, ParsesKvmExitCounters) {
  unsigned vcpu = 99;
  std::string reason;
  ASSERT_TRUE(parse_exit_param("vcpu.0.exits.sum", vcpu, reason));
  EXPECT_EQ(vcpu, 0u);
  EXPECT_EQ(reason, "all");
  ASSERT_TRUE(parse_exit_param("vcpu.12.halt_exits.sum", vcpu, reason));
  EXPECT_EQ(vcpu, 12u);
  EXPECT_EQ(reason, "halt");
  ASSERT_TRUE(parse_exit_param("vcpu.1.irq_window_exits.sum", vcpu, reason));
  EXPECT_EQ(reason, "irq_window");
}

TEST(LibvirtStats, IgnoresOtherParameters) {
  unsigned vcpu = 0;
  std::string reason;
  for (const char* name : {"vcpu.0.time", "vcpu.current", "vcpu.x.exits.sum", "vcpu..exits.sum",
                           "vcpu.0.exits.max", "vcpu.0._exits.sum", "cpu.exits.sum", "vcpu.0exits.sum"}) {
    EXPECT_FALSE(parse_exit_param(name, vcpu, reason)) << name;
  }
}
