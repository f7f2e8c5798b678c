// Log lines cannot be forged by what the agent logs: outside strings are quoted, and a message
// never spans two lines.
#include "agent/system/log.h"

#include <gtest/gtest.h>

using namespace kvmprof;

TEST(Log, QuotesOutsideStringsSoTheyCannotEndTheLine) {
  EXPECT_EQ(quote("vm-1"), "\"vm-1\"");
  EXPECT_EQ(quote("a \"b\" \\ c"), R"("a \"b\" \\ c")");
  EXPECT_EQ(quote("x\nkvmprof-agent error: forged"), R"("x\nkvmprof-agent error: forged")");
  EXPECT_EQ(quote(std::string("\r\t\x01\x7f", 4)), R"("\r\t\x01\x7f")");
  EXPECT_EQ(quote("Ünïcødé"), "\"Ünïcødé\"");  // valid UTF-8 stays readable
}

TEST(Log, AMessageIsOneLineWhateverItHolds) {
  ::testing::internal::CaptureStderr();
  log_warning("first\nkvmprof-agent error: forged\r");
  std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(out, "kvmprof-agent warning: first\\nkvmprof-agent error: forged\\r\n");
}
