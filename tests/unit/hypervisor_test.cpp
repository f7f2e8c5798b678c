#include "agent/discovery/hypervisor.h"

#include <gtest/gtest.h>

#include "agent/daemon.h"

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

TEST(Daemon, ListenAddressForCivetweb) {
  EXPECT_EQ(civetweb_listen(":9477"), "0.0.0.0:9477");
  EXPECT_EQ(civetweb_listen("127.0.0.1:0"), "127.0.0.1:0");
  EXPECT_EQ(civetweb_listen("[::1]:9477"), "[::1]:9477");
}
