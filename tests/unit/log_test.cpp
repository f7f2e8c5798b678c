// Log lines cannot be forged by what the agent logs: outside strings are quoted, and a message
// never spans two lines.
#include "agent/system/log.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

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

TEST(Log, LogfmtAndJsonEscapeWhatEveryParserNeedsAndKeepUtf8) {
  const std::string hostile = std::string("vm \"x\"\n\\ \x01 Ünï \xff\xc0\xaf \xed\xa0\x80 end");
  EXPECT_EQ(format_log_line(LogLevel::kWarning, hostile, LogFormat::kLogfmt, false, "2026-11-21T22:00:00.000Z"),
            R"(ts=2026-11-21T22:00:00.000Z level=warning msg="vm \"x\"\n\\ \u0001 Ünï \ufffd\ufffd\ufffd \ufffd\ufffd\ufffd end")");
  EXPECT_EQ(format_log_line(LogLevel::kError, hostile, LogFormat::kJson, false, "T"),
            R"({"ts":"T","level":"error","msg":"vm \"x\"\n\\ \u0001 Ünï \ufffd\ufffd\ufffd \ufffd\ufffd\ufffd end"})");
  EXPECT_EQ(format_log_line(LogLevel::kDebug, "a", LogFormat::kText, false, ""), "kvmprof-agent debug: a");
  LogFormat f{};
  EXPECT_TRUE(parse_log_format("json", f) && f == LogFormat::kJson);
  EXPECT_FALSE(parse_log_format("xml", f));
}

// journald takes a "<N>" prefix as the line's priority (sd-daemon(3)); only when stderr is the
// stream JOURNAL_STREAM names (systemd.exec(5)): another program's journal is not ours.
TEST(Log, UnderJournaldEachLineCarriesItsPriority) {
  ::testing::internal::CaptureStderr();  // fd 2 is now a file: its device and inode stand for the journal
  struct stat st {};
  ASSERT_EQ(::fstat(2, &st), 0);
  const std::string ours = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  set_log_format(LogFormat::kText, ours.c_str());
  log_warning("w");
  log_error("e");
  set_log_format(LogFormat::kJson, "1:2");  // some other stream: no prefix
  log_info("i");
  set_log_format(LogFormat::kText, nullptr);
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(out.substr(0, out.find("{")), "<4>kvmprof-agent warning: w\n<3>kvmprof-agent error: e\n");
  EXPECT_NE(out.find(R"(","level":"info","msg":"i"})"), std::string::npos) << out;
}
