// Replays the ring fuzzer's corpus (seeds and every crash it found) through the same harness,
// so each normal test run re-checks them: tests/fuzz/README.md.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "tests/fuzz/ring_input.h"

TEST(RingCorpus, EverySeedAndEveryFoundCrashReplaysCleanly) {
  const std::filesystem::path corpus =
      std::filesystem::path(KVMPROF_SOURCE_DIR) / "tests/fuzz/corpus/ring";
  size_t replayed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(corpus)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::vector<char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    SCOPED_TRACE(entry.path().filename().string());
    kvmprof::testing::fuzz_ring_input(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    ++replayed;
  }
  EXPECT_GE(replayed, 10u);
}
