// decode_record against records laid out as kernel/events/core.c writes them (built by
// tests/support/ring_writer.h), and against records that lie about their sizes.
#include "agent/system/perf_record.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tests/support/ring_writer.h"

using namespace kvmprof;
using namespace kvmprof::testing;

namespace {

constexpr uint64_t kKernelMarker = PERF_CONTEXT_KERNEL;
constexpr uint64_t kUserMarker = PERF_CONTEXT_USER;

constexpr uint64_t kEveryDecodedField = PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_IP | PERF_SAMPLE_TID |
                                        PERF_SAMPLE_TIME | PERF_SAMPLE_ADDR | PERF_SAMPLE_ID |
                                        PERF_SAMPLE_STREAM_ID | PERF_SAMPLE_CPU |
                                        PERF_SAMPLE_PERIOD | PERF_SAMPLE_CALLCHAIN;

template <class T>
T decoded(const std::vector<std::byte>& record, const RecordLayout& layout) {
  auto result = decode_record(record, layout);
  EXPECT_TRUE(result.ok()) << (result.ok() ? "" : result.error().message());
  return result.ok() && std::holds_alternative<T>(*result) ? std::get<T>(*result) : T{};
}

std::string error_of(const std::vector<std::byte>& record, const RecordLayout& layout) {
  auto result = decode_record(record, layout);
  if (result.ok()) return "(decoded)";
  EXPECT_EQ(result.error().err, 0);
  return result.error().context;
}

// The first `len` bytes of `record`, with the header size saying so.
std::vector<std::byte> truncated(std::vector<std::byte> record, size_t len) {
  record.resize(len);
  auto size = static_cast<uint16_t>(len);
  std::memcpy(record.data() + offsetof(perf_event_header, size), &size, sizeof(size));
  return record;
}

SampleFields full_sample() {
  SampleFields s;
  s.misc = PERF_RECORD_MISC_KERNEL;
  s.id = 77, s.ip = 0xffffffff81000010, s.pid = 1234, s.tid = 1240, s.time = 987654321;
  s.addr = 0xdead, s.stream_id = 78, s.cpu = 3, s.period = 250000;
  s.callchain = {kKernelMarker, 0xffffffff81000010, 0xffffffff81000020, kUserMarker, 0x401000};
  return s;
}

}  // namespace

TEST(DecodeRecord, ASampleWithEveryDecodedFieldReadsBackFieldByField) {
  RecordLayout layout{kEveryDecodedField, false};
  auto s = decoded<SampleRecord>(sample_record(full_sample(), layout), layout);
  EXPECT_EQ(s.mode, SampleMode::kHostKernel);
  EXPECT_EQ(s.id, 77u);
  EXPECT_EQ(s.ip, 0xffffffff81000010u);
  EXPECT_EQ(s.pid, 1234u);
  EXPECT_EQ(s.tid, 1240u);
  EXPECT_EQ(s.time, 987654321u);
  EXPECT_EQ(s.period, 250000u);
  EXPECT_EQ(s.kernel_stack, (std::vector<uint64_t>{0xffffffff81000010, 0xffffffff81000020}));
  EXPECT_EQ(s.user_stack, (std::vector<uint64_t>{0x401000}));
}

TEST(DecodeRecord, TheIdComesFromIdentifierOrFromId) {
  for (uint64_t id_bit : {PERF_SAMPLE_IDENTIFIER, PERF_SAMPLE_ID}) {
    RecordLayout layout{id_bit | PERF_SAMPLE_IP, false};
    EXPECT_EQ(decoded<SampleRecord>(sample_record(full_sample(), layout), layout).id, 77u);
  }
}

TEST(DecodeRecord, AGuestSampleShapedAsMeasuredHereHasGuestModeTheGuestRipAndNoStacks) {
  // Measured here: 64-byte GUEST_KERNEL samples whose callchain holds only the KERNEL and USER
  // markers (x86 perf_callchain_*() return at once under guest state). 64 bytes is the
  // single-event `perf record -g` layout IP|TID|TIME|PERIOD|CALLCHAIN; kvmprof adds IDENTIFIER
  // for shared buffers, which makes the same sample 72 bytes.
  SampleFields guest;
  guest.misc = PERF_RECORD_MISC_GUEST_KERNEL;
  guest.ip = 0x7c00, guest.pid = 4321, guest.tid = 4330, guest.time = 5, guest.period = 1,
  guest.id = 9;
  guest.callchain = {kKernelMarker, kUserMarker};
  uint64_t base = PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_PERIOD |
                  PERF_SAMPLE_CALLCHAIN;
  for (auto [type, bytes] : {std::pair{base, 64u}, std::pair{base | PERF_SAMPLE_IDENTIFIER, 72u}}) {
    RecordLayout layout{type, true};
    auto record = sample_record(guest, layout);
    ASSERT_EQ(record.size(), bytes);
    auto s = decoded<SampleRecord>(record, layout);
    EXPECT_EQ(s.mode, SampleMode::kGuestKernel);
    EXPECT_TRUE(is_guest(s.mode));
    EXPECT_EQ(s.ip, 0x7c00u);
    EXPECT_EQ(s.tid, 4330u);
    EXPECT_TRUE(s.kernel_stack.empty());
    EXPECT_TRUE(s.user_stack.empty());
  }
}

TEST(DecodeRecord, GuestAndHypervisorMarkersDropTheFramesAfterThem) {
  RecordLayout layout{PERF_SAMPLE_IP | PERF_SAMPLE_CALLCHAIN, false};
  SampleFields s;
  s.callchain = {0x1,  // before any marker: context unknown
                 kKernelMarker,
                 0xffffffff81000001,
                 static_cast<uint64_t>(PERF_CONTEXT_GUEST_KERNEL),
                 0x2,
                 static_cast<uint64_t>(PERF_CONTEXT_HV),
                 0x3,
                 kUserMarker,
                 0x401001,
                 static_cast<uint64_t>(PERF_CONTEXT_GUEST_USER),
                 0x4,
                 static_cast<uint64_t>(PERF_CONTEXT_GUEST),
                 0x5};
  auto decoded_sample = decoded<SampleRecord>(sample_record(s, layout), layout);
  EXPECT_EQ(decoded_sample.kernel_stack, (std::vector<uint64_t>{0xffffffff81000001}));
  EXPECT_EQ(decoded_sample.user_stack, (std::vector<uint64_t>{0x401001}));
}

TEST(DecodeRecord, TheModeComesFromTheCpumodeBitsAlone) {
  const SampleMode expected[8] = {SampleMode::kUnknown,     SampleMode::kHostKernel,
                                  SampleMode::kHostUser,    SampleMode::kHypervisor,
                                  SampleMode::kGuestKernel, SampleMode::kGuestUser,
                                  SampleMode::kUnknown,     SampleMode::kUnknown};
  for (uint16_t mode = 0; mode < 8; ++mode) {
    EXPECT_EQ(sample_mode(mode), expected[mode]) << mode;
    EXPECT_EQ(sample_mode(static_cast<uint16_t>(mode | PERF_RECORD_MISC_EXACT_IP)), expected[mode])
        << mode;
  }
  EXPECT_EQ(to_string(SampleMode::kGuestKernel), "guest_kernel");
  EXPECT_EQ(to_string(SampleMode::kGuestUser), "guest_user");
  EXPECT_EQ(to_string(SampleMode::kHostKernel), "host_kernel");
  EXPECT_EQ(to_string(SampleMode::kHostUser), "host_user");
  EXPECT_EQ(to_string(SampleMode::kHypervisor), "hypervisor");
  EXPECT_EQ(to_string(SampleMode::kUnknown), "unknown");
}

TEST(DecodeRecord, SampleReadAndBitsAfterTheCallchainAreRefused) {
  for (uint64_t bit : {uint64_t{PERF_SAMPLE_READ}, uint64_t{PERF_SAMPLE_RAW},
                       uint64_t{PERF_SAMPLE_BRANCH_STACK}, uint64_t{PERF_SAMPLE_REGS_USER},
                       uint64_t{PERF_SAMPLE_STACK_USER}, uint64_t{PERF_SAMPLE_WEIGHT}}) {
    RecordLayout layout{PERF_SAMPLE_IP | bit, false};
    EXPECT_NE(error_of(sample_record(full_sample(), layout), layout).find("not supported"),
              std::string::npos)
        << bit;
  }
}

TEST(DecodeRecord, ACallchainCountBeyondTheRecordIsAnErrorEvenWhenItsByteSizeOverflows) {
  RecordLayout layout{PERF_SAMPLE_IP | PERF_SAMPLE_CALLCHAIN, false};
  SampleFields s;
  s.callchain = {kKernelMarker, 0xffffffff81000001};
  auto record = sample_record(s, layout);
  const size_t nr_at = sizeof(perf_event_header) + sizeof(uint64_t);
  for (uint64_t nr : {uint64_t{3}, uint64_t{1} << 61, ~uint64_t{0}}) {
    std::memcpy(record.data() + nr_at, &nr, sizeof(nr));
    EXPECT_EQ(error_of(record, layout), "perf record: callchain nr exceeds the record") << nr;
  }
}

TEST(DecodeRecord, ASampleCutShortAnywhereIsAnErrorNamingTheFieldItEndsIn) {
  RecordLayout layout{kEveryDecodedField, false};
  auto record = sample_record(full_sample(), layout);
  for (size_t len = sizeof(perf_event_header); len < record.size(); ++len) {
    std::string error = error_of(truncated(record, len), layout);
    EXPECT_TRUE(error.starts_with("perf record: ends inside") ||
                error == "perf record: callchain nr exceeds the record")
        << len << ": " << error;
  }
  EXPECT_EQ(error_of(truncated(record, sizeof(perf_event_header) + 4), layout),
            "perf record: ends inside identifier");
}

TEST(DecodeRecord, BytesLeftOverAfterASampleMeanTheLayoutIsNotTheEventsOne) {
  RecordLayout written{PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME, false};
  RecordLayout assumed{PERF_SAMPLE_IP | PERF_SAMPLE_TIME, false};
  EXPECT_EQ(error_of(sample_record(full_sample(), written), assumed),
            "perf record: sample longer than its sample_type says");
}

TEST(DecodeRecord, LostLostSamplesThrottleAndUnthrottleReadTheirFixedFields) {
  RecordLayout layout{PERF_SAMPLE_IP, false};
  auto lost = decoded<LostRecord>(lost_record(41, 7, layout), layout);
  EXPECT_EQ(lost.id, 41u);
  EXPECT_EQ(lost.lost, 7u);
  EXPECT_EQ(decoded<LostSamplesRecord>(lost_samples_record(12, layout), layout).lost, 12u);
  for (bool throttled : {true, false}) {
    auto t = decoded<ThrottleRecord>(throttle_record(throttled, 1000, 41, 42, layout), layout);
    EXPECT_EQ(t.throttled, throttled);
    EXPECT_EQ(t.time, 1000u);
    EXPECT_EQ(t.id, 41u);
    EXPECT_EQ(t.stream_id, 42u);
  }
}

TEST(DecodeRecord, SampleIdTrailersWithIdentifierAreNotMistakenForErrors) {
  RecordLayout layout{PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_ID |
                          PERF_SAMPLE_STREAM_ID | PERF_SAMPLE_CPU | PERF_SAMPLE_IP |
                          PERF_SAMPLE_PERIOD,
                      true};
  SampleIdValues sid{1, 2, 3, 41, 42, 5};
  auto lost = lost_record(41, 7, layout, sid);
  ASSERT_EQ(lost.size(), 8u + 16u + 48u);  // header, {id, lost}, six trailer words
  uint64_t last = 0;
  std::memcpy(&last, lost.data() + lost.size() - 8, 8);
  EXPECT_EQ(last, 41u);  // IDENTIFIER closes the trailer, at a fixed distance from the end
  EXPECT_EQ(decoded<LostRecord>(lost, layout).lost, 7u);
  EXPECT_EQ(decoded<LostSamplesRecord>(lost_samples_record(12, layout, sid), layout).lost, 12u);
  EXPECT_EQ(
      decoded<ThrottleRecord>(throttle_record(false, 9, 41, 42, layout, sid), layout).stream_id,
      42u);
}

TEST(DecodeRecord, NonSampleRecordsShorterThanTheirFixedFieldsAreErrors) {
  RecordLayout layout{};
  EXPECT_EQ(error_of(truncated(lost_record(1, 2, layout), 16), layout),
            "perf record: ends inside PERF_RECORD_LOST {id, lost}");
  EXPECT_EQ(error_of(truncated(lost_samples_record(2, layout), 12), layout),
            "perf record: ends inside PERF_RECORD_LOST_SAMPLES {lost}");
  EXPECT_EQ(error_of(truncated(throttle_record(true, 1, 2, 3, layout), 24), layout),
            "perf record: ends inside PERF_RECORD_(UN)THROTTLE {time, id, stream_id}");
}

TEST(DecodeRecord, OtherRecordTypesArePassedOnByTypeOnly) {
  for (uint32_t type :
       {uint32_t{PERF_RECORD_MMAP2}, uint32_t{PERF_RECORD_COMM}, uint32_t{0xffff}}) {
    EXPECT_EQ(decoded<OtherRecord>(raw_record(type, 40, 40), {}).type, type);
  }
}

TEST(DecodeRecord, RecordsShorterThanAHeaderOrDisagreeingWithTheirHeaderAreErrors) {
  std::vector<std::byte> four(4);
  EXPECT_EQ(error_of(four, {}), "perf record: shorter than its header");
  EXPECT_EQ(error_of(raw_record(PERF_RECORD_COMM, 48, 40), {}),
            "perf record: header size differs from the record");
  EXPECT_EQ(error_of(raw_record(PERF_RECORD_COMM, 0, 8), {}),
            "perf record: header size differs from the record");
}

TEST(DecodeRecord, ASampleIdTrailerOfAnotherSizeThanItsSampleTypeSaysIsRefused) {
  const RecordLayout three_words{PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_TID | PERF_SAMPLE_TIME, true};
  const RecordLayout one_word{PERF_SAMPLE_IDENTIFIER, true};
  auto lost = lost_record(1, 2, three_words);
  ASSERT_TRUE(decode_record(lost, three_words).ok());
  auto refused = decode_record(lost, one_word);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().context, "perf record: sample_id trailer of 24 bytes, its sample_type says 8");
  auto throttle = throttle_record(true, 1, 2, 3, one_word);
  EXPECT_TRUE(decode_record(throttle, one_word).ok());
  EXPECT_FALSE(decode_record(throttle, three_words).ok());
  EXPECT_TRUE(decode_record(throttle, RecordLayout{PERF_SAMPLE_IDENTIFIER, false}).ok());  // no trailer expected: not checked
}
