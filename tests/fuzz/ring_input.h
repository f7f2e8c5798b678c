#pragma once
// One fuzz input = one perf mmap ring as a hostile (or broken) kernel might leave it: the page
// fields come from the input's first bytes, the data area from the rest. fuzz_ring_input drains
// it with RingReader, decodes every record with decode_record and reads the capabilities; the
// sanitizers and the checks below turn any out-of-bounds read or broken promise into a crash.
// Used by the libFuzzer target (ring_fuzz.cpp) and by the unit tests, which replay the corpus
// (tests/unit/ring_corpus_test.cpp). tests/fuzz/make_ring_corpus.py writes the same layout.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <span>
#include <variant>

#include "agent/system/perf_record.h"
#include "agent/system/perf_ring.h"
#include "tests/support/ring_writer.h"

namespace kvmprof::testing {

// The input's first 64 bytes, little-endian; a shorter input reads as zeros past its end.
struct RingFuzzHeader {
  uint8_t flags;   // bit 0: two data pages (else one); bit 1: sample_id_all; bit 2: head =
                   // tail + head_delta (else `head`); bit 3: data_offset/data_size as the
                   // kernel sets them (else the raw fields below)
  uint8_t layout;  // index into kFuzzLayouts (mod its size)
  uint16_t head_delta;
  uint32_t max_bytes;  // per drain; 0 = unlimited
  uint64_t head, tail, data_offset, data_size, capabilities;
  uint32_t lock;
  uint16_t time_shift;
  uint16_t reserved;
  uint64_t time_zero;
};
static_assert(sizeof(RingFuzzHeader) == 64);

// sample_types the fuzzer picks from: what kvmprof and `perf record` open, plus two refused ones.
inline constexpr uint64_t kFuzzLayouts[] = {
    PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_PERIOD |
        PERF_SAMPLE_CALLCHAIN,
    PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME |
        PERF_SAMPLE_PERIOD | PERF_SAMPLE_CALLCHAIN,
    PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME |
        PERF_SAMPLE_ADDR | PERF_SAMPLE_ID | PERF_SAMPLE_STREAM_ID | PERF_SAMPLE_CPU |
        PERF_SAMPLE_PERIOD | PERF_SAMPLE_CALLCHAIN,
    PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_CPU |
        PERF_SAMPLE_PERIOD,
    PERF_SAMPLE_IP,
    0,
    PERF_SAMPLE_IP | PERF_SAMPLE_READ,
    PERF_SAMPLE_IP | PERF_SAMPLE_CALLCHAIN | PERF_SAMPLE_RAW,
};

// A broken promise of the reader or decoder: crash so the fuzzer keeps the input.
inline void fuzz_check(bool promise_kept) {
  if (!promise_kept) std::abort();
}

// Every record handed on is whole: at least a header, and exactly the size it claims.
inline void fuzz_record(std::span<const std::byte> record, const RecordLayout& layout) {
  perf_event_header header{};
  fuzz_check(record.size() >= sizeof(header));
  std::memcpy(&header, record.data(), sizeof(header));
  fuzz_check(header.size == record.size());
  auto decoded = decode_record(record, layout);
  if (decoded.ok() && std::holds_alternative<SampleRecord>(*decoded)) {
    const auto& s = std::get<SampleRecord>(*decoded);
    fuzz_check((s.kernel_stack.size() + s.user_stack.size()) * sizeof(uint64_t) <= record.size());
  }
}

inline void fuzz_ring_input(const uint8_t* data, size_t size) {
  RingFuzzHeader h{};
  std::memcpy(&h, data, std::min(size, sizeof(h)));
  std::span<const std::byte> body;
  if (size > sizeof(h)) {
    body = {reinterpret_cast<const std::byte*>(data) + sizeof(h), size - sizeof(h)};
  }

  RingWriter ring((h.flags & 1) ? 2 : 1);
  ring.write_raw(0, body.first(std::min(body.size(), ring.data_size())));
  perf_event_mmap_page& page = ring.page();
  page.data_tail = h.tail;
  page.data_head = (h.flags & 4) ? h.tail + h.head_delta : h.head;
  if (!(h.flags & 8)) {
    page.data_offset = h.data_offset;
    page.data_size = h.data_size;
  }
  page.capabilities = h.capabilities;
  page.lock = h.lock;
  page.time_shift = h.time_shift;
  page.time_zero = h.time_zero;

  RecordLayout layout{kFuzzLayouts[h.layout % std::size(kFuzzLayouts)], (h.flags & 2) != 0};
  size_t max_bytes = h.max_bytes ? h.max_bytes : SIZE_MAX;
  RingReader reader(ring.mapping(), kRingPageSize);
  fuzz_check(reader.data_size() <= ring.mapping().size());
  for (int round = 0; round < 4; ++round) {  // a max_bytes drain leaves the rest for the next
    auto stats =
        reader.drain([&](std::span<const std::byte> r) { fuzz_record(r, layout); }, max_bytes);
    fuzz_check(stats.bytes <= reader.data_size());
    if (stats.corrupt || max_bytes == SIZE_MAX) fuzz_check(reader.pending() == 0);
  }
  read_caps(page);
}

}  // namespace kvmprof::testing
