// RingReader and read_caps against a heap ring written the way the kernel writes it
// (tests/support/ring_writer.h), including the hostile pages and sizes a reader must survive.
#include "agent/system/perf_ring.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "agent/system/perf_record.h"
#include "tests/support/ring_writer.h"

using namespace kvmprof;
using namespace kvmprof::testing;

namespace {

using Bytes = std::vector<std::byte>;

constexpr uint64_t kKernelMarker = PERF_CONTEXT_KERNEL;
constexpr uint64_t kUserMarker = PERF_CONTEXT_USER;
const RecordLayout kLayout{PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_IP | PERF_SAMPLE_TID |
                               PERF_SAMPLE_TIME | PERF_SAMPLE_PERIOD | PERF_SAMPLE_CALLCHAIN,
                           true};

struct Drained {
  DrainStats stats;
  std::vector<Bytes> records;
};

Drained drain(RingReader& reader, size_t max_bytes = SIZE_MAX) {
  Drained out;
  out.stats = reader.drain(
      [&](std::span<const std::byte> r) { out.records.emplace_back(r.begin(), r.end()); },
      max_bytes);
  return out;
}

// A sample whose ip is `seq`, with `frames` kernel frames so sizes (and wrap points) vary.
Bytes sample(uint64_t seq, size_t frames = 2) {
  SampleFields s;
  s.id = 5, s.ip = seq, s.pid = 100, s.tid = 101, s.time = seq * 10, s.period = 1;
  s.callchain = {kKernelMarker};
  for (size_t i = 0; i < frames; ++i) s.callchain.push_back(0xffffffff81000000 + i);
  s.callchain.push_back(kUserMarker);
  return sample_record(s, kLayout);
}

uint64_t ip_of(const Bytes& record) {
  auto decoded = decode_record(record, kLayout);
  return decoded.ok() && std::holds_alternative<SampleRecord>(*decoded)
             ? std::get<SampleRecord>(*decoded).ip
             : ~uint64_t{0};
}

uint64_t tail_of(RingWriter& writer) { return writer.page().data_tail; }

// Publishes `record` at the writer's head as it is, whatever its header claims.
void publish_raw(RingWriter& writer, const Bytes& record) {
  writer.write_raw(writer.head(), record);
  writer.set_head(writer.head() + record.size());
}

}  // namespace

TEST(RingReader, AnEmptyRingDrainsNothingAndLeavesTheTail) {
  RingWriter writer;
  RingReader reader(writer.mapping(), kRingPageSize);
  auto out = drain(reader);
  EXPECT_EQ(out.stats.records, 0u);
  EXPECT_FALSE(out.stats.corrupt);
  EXPECT_EQ(tail_of(writer), 0u);
  EXPECT_EQ(reader.data_size(), 2 * kRingPageSize);
}

TEST(RingReader, EveryRecordKindIsPassedWholeInOrderAndTheTailFollowsTheHead) {
  RingWriter writer(2, kLayout);
  RingReader reader(writer.mapping(), kRingPageSize);
  SampleIdValues sid{100, 101, 7, 5, 6, 2};
  std::vector<Bytes> written = {sample(1),
                                lost_record(5, 3, kLayout, sid),
                                lost_samples_record(4, kLayout, sid),
                                throttle_record(true, 8, 5, 6, kLayout, sid),
                                throttle_record(false, 9, 5, 6, kLayout, sid),
                                raw_record(PERF_RECORD_MMAP2, 48, 48)};
  size_t bytes = 0;
  for (const auto& r : written) {
    ASSERT_TRUE(writer.write(r));
    bytes += r.size();
  }
  EXPECT_EQ(reader.pending(), bytes);
  auto out = drain(reader);
  EXPECT_EQ(out.records, written);
  EXPECT_EQ(out.stats.bytes, bytes);
  EXPECT_EQ(tail_of(writer), writer.head());
  EXPECT_EQ(reader.pending(), 0u);
  std::vector<size_t> kinds;
  for (const auto& r : out.records) kinds.push_back(decode_record(r, kLayout)->index());
  EXPECT_EQ(kinds, (std::vector<size_t>{0, 1, 2, 3, 3, 4}));
}

TEST(RingReader, ARecordThatWrapsIsPassedWholeFromEveryStartOffsetOfTheDataArea) {
  RingWriter writer(2, kLayout);
  RingReader reader(writer.mapping(), kRingPageSize);
  const uint64_t lap = 5 * writer.data_size();  // positions run free; only the offset matters
  for (uint64_t offset = 0; offset < writer.data_size(); offset += 8) {
    writer.set_tail(lap + offset);
    writer.set_head(lap + offset);
    Bytes first = sample(offset, 20), second = sample(offset + 1, 0);  // 232 and 72 bytes
    ASSERT_TRUE(writer.write(first));
    ASSERT_TRUE(writer.write(second));
    auto out = drain(reader);
    ASSERT_EQ(out.records, (std::vector<Bytes>{first, second})) << "offset " << offset;
    ASSERT_FALSE(out.stats.corrupt);
    ASSERT_EQ(ip_of(out.records[0]), offset);
    ASSERT_EQ(tail_of(writer), writer.head());
  }
}

TEST(RingReader, AHeaderSplitAcrossTheEndIsReassembledThoughTheKernelNeverSplitsOne) {
  RingWriter writer(1, kLayout);
  RingReader reader(writer.mapping(), kRingPageSize);
  for (uint64_t start : {writer.data_size() - 4, writer.data_size() - 2, writer.data_size() - 7}) {
    writer.set_tail(start);
    writer.set_head(start);
    Bytes record = sample(start);
    publish_raw(writer, record);
    auto out = drain(reader);
    EXPECT_EQ(out.records, std::vector<Bytes>{record});
    EXPECT_FALSE(out.stats.corrupt);
  }
}

TEST(RingReader, PositionsKeepWorkingWhenTheyPassTwoToThe64) {
  RingWriter writer(1, kLayout);
  RingReader reader(writer.mapping(), kRingPageSize);
  writer.set_tail(~uint64_t{0} - 47);
  writer.set_head(~uint64_t{0} - 47);
  for (uint64_t seq = 0; seq < 4; ++seq) ASSERT_TRUE(writer.write(sample(seq)));
  auto out = drain(reader);
  ASSERT_EQ(out.records.size(), 4u);
  EXPECT_EQ(ip_of(out.records[3]), 3u);
  EXPECT_FALSE(out.stats.corrupt);
  EXPECT_EQ(tail_of(writer), writer.head());
  EXPECT_LT(writer.head(), 4096u);  // wrapped past zero
}

TEST(RingReader, SizesZeroFourSevenAndLargerThanTheRingEndTheDrainAsCorruptAndTheNextDrainWorks) {
  RingWriter writer(2, kLayout);
  RingReader reader(writer.mapping(), kRingPageSize);
  for (uint16_t size : {uint16_t{0}, uint16_t{4}, uint16_t{7}, uint16_t{0xfff8}}) {
    Bytes bad = raw_record(PERF_RECORD_SAMPLE, size, 64);
    publish_raw(writer, bad);
    auto out = drain(reader);
    EXPECT_TRUE(out.stats.corrupt) << size;
    EXPECT_EQ(out.stats.records, 0u);
    EXPECT_EQ(out.stats.bytes, 64u) << "the whole published span was given back";
    EXPECT_EQ(tail_of(writer), writer.head());
    EXPECT_EQ(reader.pending(), 0u);

    ASSERT_TRUE(writer.write(sample(size)));
    auto next = drain(reader);
    EXPECT_FALSE(next.stats.corrupt);
    ASSERT_EQ(next.records.size(), 1u);
    EXPECT_EQ(ip_of(next.records[0]), size);
  }
}

TEST(RingReader, RecordsBeforeABadOneArePassedAndTheRestUpToTheHeadIsGivenBack) {
  RingWriter writer(2, kLayout);
  RingReader reader(writer.mapping(), kRingPageSize);
  ASSERT_TRUE(writer.write(sample(1)));
  ASSERT_TRUE(writer.write(sample(2)));
  publish_raw(writer, raw_record(PERF_RECORD_SAMPLE, 0, 24));
  ASSERT_TRUE(writer.write(sample(3)));  // behind the bad one: dropped with it
  auto out = drain(reader);
  EXPECT_TRUE(out.stats.corrupt);
  ASSERT_EQ(out.records.size(), 2u);
  EXPECT_EQ(ip_of(out.records[1]), 2u);
  EXPECT_EQ(out.stats.bytes, writer.head());
  EXPECT_EQ(tail_of(writer), writer.head());
}

TEST(RingReader, AHeadThatEndsInsideARecordIsCorrupt) {
  RingWriter writer(1, kLayout);
  RingReader reader(writer.mapping(), kRingPageSize);
  Bytes record = sample(1);
  writer.write_raw(0, record);
  writer.set_head(record.size() - 16);
  auto out = drain(reader);
  EXPECT_TRUE(out.stats.corrupt);
  EXPECT_EQ(out.stats.records, 0u);
  EXPECT_EQ(tail_of(writer), record.size() - 16);
}

TEST(RingReader, AHeadFarAheadOfOrBehindTheTailIsCorruptAndNothingIsRead) {
  RingWriter writer(1, kLayout);
  RingReader reader(writer.mapping(), kRingPageSize);
  for (uint64_t distance : {uint64_t{kRingPageSize + 8}, uint64_t{1} << 63, ~uint64_t{0} - 7}) {
    uint64_t tail = writer.head();
    writer.set_head(tail + distance);
    EXPECT_EQ(reader.pending(), 0u) << "an absurd head has nothing pending";
    auto out = drain(reader);
    EXPECT_TRUE(out.stats.corrupt) << distance;
    EXPECT_EQ(out.stats.records, 0u);
    EXPECT_EQ(out.stats.bytes, 0u) << "nothing between tail and an absurd head is data";
    EXPECT_EQ(tail_of(writer), tail + distance);

    ASSERT_TRUE(writer.write(sample(distance)));  // the kernel goes on from its head
    auto next = drain(reader);
    EXPECT_FALSE(next.stats.corrupt);
    ASSERT_EQ(next.records.size(), 1u);
    EXPECT_EQ(ip_of(next.records[0]), distance);
  }
}

TEST(RingReader, MaxBytesStopsBeforeTheRecordThatWouldPassItButAlwaysTakesOne) {
  RingWriter writer(1, kLayout);
  RingReader reader(writer.mapping(), kRingPageSize);
  for (uint64_t seq = 0; seq < 10; ++seq) {
    ASSERT_TRUE(writer.write(sample(seq, 0)));  // 72 bytes each
  }
  auto out = drain(reader, 200);
  EXPECT_EQ(out.stats.records, 2u);
  EXPECT_EQ(out.stats.bytes, 144u);
  EXPECT_EQ(tail_of(writer), 144u);
  EXPECT_EQ(reader.pending(), 8 * 72u);
  for (size_t max_bytes : {size_t{0}, size_t{71}}) {
    auto one = drain(reader, max_bytes);
    ASSERT_EQ(one.records.size(), 1u) << max_bytes;
  }
  auto rest = drain(reader);
  ASSERT_EQ(rest.records.size(), 6u);
  EXPECT_EQ(ip_of(rest.records[0]), 4u);
}

TEST(RingReader, HostileDataOffsetsAndSizesNeverLeadOutsideTheMapping) {
  struct Case {
    uint64_t offset, size;
    size_t expected;
  };
  const Case cases[] = {
      {0, 0, 8192},                       // before 4.1: the data follows page 0
      {4096, 8192, 8192},                 // as the kernel sets them
      {8192, 4096, 4096},                 // a smaller area inside the mapping is taken as is
      {4096, 6000, 8192},                 // not a power of two
      {4096, 16384, 8192},                // past the end
      {~uint64_t{0} - 4095, 8192, 8192},  // offset + size overflows
      {8, 4096, 8192},                    // over the page's own fields
      {4096, uint64_t{1} << 63, 8192},
      {12288, 0, 8192},
  };
  for (const Case& c : cases) {
    RingWriter writer(2, kLayout);
    writer.page().data_offset = c.offset;
    writer.page().data_size = c.size;
    RingReader reader(writer.mapping(), kRingPageSize);
    EXPECT_EQ(reader.data_size(), c.expected) << c.offset << "/" << c.size;
    writer.set_head(c.expected);  // a full ring of zeros: a size-0 header
    EXPECT_TRUE(drain(reader).stats.corrupt);
  }
}

TEST(RingReader, AMappingThatIsNotOnePlusTwoToTheNPagesUsesTheLargestPowerOfTwoThatFits) {
  RingWriter writer(2, kLayout);
  writer.page().data_size = 0;
  RingReader reader(writer.mapping().first(3 * kRingPageSize - 100), kRingPageSize);
  EXPECT_EQ(reader.data_size(), kRingPageSize);
}

TEST(RingReader, ARegionWithoutRoomForAnAlignedPageOrDataIsAnEmptyRing) {
  RingWriter writer(1, kLayout);
  ASSERT_TRUE(writer.write(sample(1)));
  auto full = writer.mapping();
  writer.page().data_offset = 0;  // so the page size decides
  std::vector<std::pair<std::span<std::byte>, size_t>> regions = {
      {full.first(100), kRingPageSize},            // smaller than the page fields
      {full.first(kRingPageSize), kRingPageSize},  // page 0 alone
      {full.subspan(4), kRingPageSize},            // misaligned: no atomic_ref on its words
      {full, 0},                                   // a page size smaller than the page fields
  };
  for (auto [region, page_size] : regions) {
    RingReader reader(region, page_size);
    EXPECT_EQ(reader.data_size(), 0u);
    EXPECT_EQ(reader.pending(), 0u);
    EXPECT_EQ(drain(reader).stats.records, 0u);
  }
  EXPECT_EQ(tail_of(writer), 0u);
}

TEST(RingReader, LostRecordsAsTheKernelWritesThemPrecedeTheNextRecordThatFits) {
  SampleIdValues sid{100, 101, 7, 5, 6, 2};
  RingWriter writer(1, kLayout, sid);
  RingReader reader(writer.mapping(), kRingPageSize);
  uint64_t seq = 0;
  while (writer.write(sample(seq))) ++seq;
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(writer.write(sample(seq + 1)));
  EXPECT_EQ(drain(reader).records.size(), seq);
  ASSERT_TRUE(writer.write(sample(seq)));
  auto out = drain(reader);
  ASSERT_EQ(out.records.size(), 2u);
  EXPECT_EQ(out.records[0].size(), 8u + 16u + 24u)
      << "header, {id, lost}, trailer {pid, tid}, time, identifier";
  auto lost = decode_record(out.records[0], kLayout);
  ASSERT_TRUE(lost.ok());
  EXPECT_EQ(std::get<LostRecord>(*lost).id, 5u);
  EXPECT_EQ(std::get<LostRecord>(*lost).lost, 4u);
  EXPECT_EQ(ip_of(out.records[1]), seq);
}

TEST(RingWriter, KeepsOneByteFreeAsCircSpaceDoes) {
  RingWriter full(1), almost(1);
  EXPECT_FALSE(full.write(raw_record(PERF_RECORD_COMM, 0, kRingPageSize)));
  EXPECT_TRUE(almost.write(raw_record(PERF_RECORD_COMM, 0, kRingPageSize - 8)));
}

TEST(RingReader, AWriterThreadAndTheReaderSeeEveryRecordExactlyOnceInOrder) {
  constexpr uint64_t kRecords = 200000;
  RingWriter writer(1, kLayout, SampleIdValues{100, 101, 0, 5, 0, 0});
  RingReader reader(writer.mapping(), kRingPageSize);
  std::thread producer([&] {
    for (uint64_t seq = 0; seq < kRecords; ++seq) {
      Bytes record = sample(seq, seq % 7);
      while (!writer.write(record)) std::this_thread::yield();  // counted lost, then retried
    }
  });
  uint64_t next = 0, lost = 0, out_of_order = 0, undecodable = 0;
  bool corrupt = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (next < kRecords && std::chrono::steady_clock::now() < deadline) {
    auto stats = reader.drain([&](std::span<const std::byte> r) {
      auto record = decode_record(r, kLayout);
      if (!record.ok()) {
        ++undecodable;
      } else if (auto* s = std::get_if<SampleRecord>(&*record)) {
        out_of_order += s->ip != next;
        next = s->ip + 1;
      } else if (auto* l = std::get_if<LostRecord>(&*record)) {
        lost += l->lost;
      }
    });
    corrupt |= stats.corrupt;
    if (stats.records == 0) std::this_thread::yield();
  }
  producer.join();
  EXPECT_EQ(next, kRecords);
  EXPECT_EQ(out_of_order, 0u);
  EXPECT_EQ(undecodable, 0u);
  EXPECT_FALSE(corrupt);
  EXPECT_EQ(lost, writer.refused()) << "every refusal reported by a LOST record";
}
