// Replays every fuzzer's corpus (seeds and every crash it found) through the same harness, so
// each normal test run re-checks them: tests/fuzz/README.md.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "tests/fuzz/agent_config_input.h"
#include "tests/fuzz/basic_auth_input.h"
#include "tests/fuzz/elf_input.h"
#include "tests/fuzz/event_spec_input.h"
#include "tests/fuzz/http_request_input.h"
#include "tests/fuzz/kallsyms_input.h"
#include "tests/fuzz/maps_input.h"
#include "tests/fuzz/policy_select_input.h"
#include "tests/fuzz/procfs_input.h"
#include "tests/fuzz/query_input.h"
#include "tests/fuzz/quirk_table_input.h"
#include "tests/fuzz/ring_input.h"
#include "tests/fuzz/web_config_input.h"

namespace {

using Harness = void (*)(const uint8_t*, size_t);

size_t replay(const char* corpus, Harness harness) {
  size_t replayed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(KVMPROF_SOURCE_DIR) / "tests/fuzz/corpus" / corpus)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::vector<char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    SCOPED_TRACE(entry.path().filename().string());
    harness(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    ++replayed;
  }
  return replayed;
}

}  // namespace

TEST(FuzzCorpus, EverySeedAndEveryFoundCrashReplaysCleanly) {
  EXPECT_GE(replay("ring", kvmprof::testing::fuzz_ring_input), 10u);
  EXPECT_GE(replay("kallsyms", kvmprof::testing::fuzz_kallsyms_input), 5u);
  EXPECT_GE(replay("maps", kvmprof::testing::fuzz_maps_input), 3u);
  EXPECT_GE(replay("query", kvmprof::testing::fuzz_query_input), 5u);
  EXPECT_GE(replay("elf", kvmprof::testing::fuzz_elf_input), 5u);
  EXPECT_GE(replay("web_config", kvmprof::testing::fuzz_web_config_input), 5u);
  EXPECT_GE(replay("basic_auth", kvmprof::testing::fuzz_basic_auth_input), 7u);
  EXPECT_GE(replay("agent_config", kvmprof::testing::fuzz_agent_config_input), 30u);
  EXPECT_GE(replay("event_spec", kvmprof::testing::fuzz_event_spec_input), 15u);
  EXPECT_GE(replay("quirk_table", kvmprof::testing::fuzz_quirk_table_input), 15u);
  EXPECT_GE(replay("procfs", kvmprof::testing::fuzz_procfs_input), 20u);
  EXPECT_GE(replay("policy_select", kvmprof::testing::fuzz_policy_select_input), 14u);
  EXPECT_GE(replay("http_request", kvmprof::testing::fuzz_http_request_input), 18u);
}
