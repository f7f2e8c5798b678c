// read_caps: the mmap page's capabilities read by structure (commit 860f085b74e9), with the
// page's seqlock, on pages laid out as each kernel generation writes them.
#include "agent/system/perf_ring.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tests/support/ring_writer.h"

using namespace kvmprof;
using namespace kvmprof::testing;

namespace {

RingCaps caps_for(uint64_t capabilities) {
  RingWriter writer;
  writer.page().capabilities = capabilities;
  return read_caps(writer.page());
}

}  // namespace

TEST(ReadCaps, WithCapBit0IsDeprecatedSetBits2To5AreTrusted) {
  auto caps = caps_for(0b101010);  // deprecated, time, time_short
  EXPECT_EQ(caps.rule, "cap_bit0_is_deprecated set: bits 2-5 trusted");
  EXPECT_EQ(caps.rdpmc, false);
  EXPECT_EQ(caps.time, true);
  EXPECT_EQ(caps.time_zero, false);
  EXPECT_EQ(caps.time_short, true);
}

TEST(ReadCaps, AllBitsSetMeansEveryCapability) {
  auto caps = caps_for(0b111111);
  EXPECT_EQ(caps.rdpmc, true);
  EXPECT_EQ(caps.time, true);
  EXPECT_EQ(caps.time_zero, true);
  EXPECT_EQ(caps.time_short, true);
}

TEST(ReadCaps, Bit0AloneIsThePre312LayoutWhereEverythingIsUnknown) {
  for (uint64_t capabilities : {uint64_t{0b1}, uint64_t{0}, uint64_t{0b111101}}) {
    auto caps = caps_for(capabilities);
    EXPECT_EQ(caps.rule,
              "bit 1 clear: pre-3.12 layout, bit 0 meant both rdpmc and time: all unknown");
    EXPECT_FALSE(caps.rdpmc.has_value());
    EXPECT_FALSE(caps.time.has_value());
    EXPECT_FALSE(caps.time_zero.has_value());
    EXPECT_FALSE(caps.time_short.has_value());
  }
}

TEST(ReadCaps, TheTimeConversionFieldsAreCopied) {
  RingWriter writer;
  writer.page().time_shift = 31;
  writer.page().time_mult = 123456;
  writer.page().time_zero = 0xabcdef;
  auto caps = read_caps(writer.page());
  EXPECT_EQ(caps.time_shift, 31);
  EXPECT_EQ(caps.time_mult, 123456u);
  EXPECT_EQ(caps.time_zero_value, 0xabcdefu);
}

TEST(ReadCaps, ALockThatStaysOddIsGivenUpOnAndSaidSo) {
  RingWriter writer;
  writer.page().lock = 7;
  auto caps = read_caps(writer.page());
  EXPECT_NE(caps.rule.find("seqlock never settled"), std::string::npos) << caps.rule;
  EXPECT_EQ(caps.rdpmc, false);
}

TEST(ReadCaps, ReadsDuringConcurrentUpdatesAreNeverTorn) {
  RingWriter writer;
  perf_event_mmap_page& page = writer.page();
  std::atomic<bool> stop{false};
  // perf_event_update_userpage(): ++lock, barrier, the fields, barrier, ++lock. Release stores
  // of the fields publish the odd lock to any reader that sees one of them.
  std::thread kernel([&] {
    std::atomic_ref<__u32> lock(page.lock);
    constexpr auto kRelease = std::memory_order_release;
    for (uint32_t k = 1; !stop.load(std::memory_order_relaxed); ++k) {
      uint32_t seq = lock.load(std::memory_order_relaxed);
      lock.store(seq + 1, std::memory_order_relaxed);
      std::atomic_ref<__u32>(page.time_mult).store(k, kRelease);
      std::atomic_ref<__u16>(page.time_shift).store(static_cast<uint16_t>(k), kRelease);
      std::atomic_ref<__u64>(page.time_zero).store(k, kRelease);
      lock.store(seq + 2, kRelease);
      if (k % 16 == 0) std::this_thread::yield();
    }
  });
  int torn = 0, settled = 0;
  for (int i = 0; i < 20000; ++i) {
    auto caps = read_caps(page);
    if (caps.rule.find("never settled") != std::string::npos) continue;
    ++settled;
    torn += caps.time_zero_value != caps.time_mult ||
            caps.time_shift != static_cast<uint16_t>(caps.time_mult);
  }
  stop = true;
  kernel.join();
  EXPECT_EQ(torn, 0);
  EXPECT_GT(settled, 0);
}
