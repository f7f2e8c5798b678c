#pragma once
// The perf mmap ring buffer, read right (tools/lib/perf/mmap.c perf_mmap__read(), the uapi
// comment on struct perf_event_mmap_page, kernel/events/ring_buffer.c perf_output_put_handle()).
//
// RingReader works on a memory region: page 0 (struct perf_event_mmap_page) followed by the
// data area, as the kernel maps it, so tests and the fuzzer feed crafted bytes and the fake
// kernel writes records into heap memory. `data_head` is loaded with acquire, `data_tail`
// stored with release; a record that wraps around the end of the data area is copied into a
// scratch buffer in two pieces. The header fields come from another party (the kernel, or
// hostile bytes): a record smaller than its header or larger than the bytes available, or a
// head that runs ahead of the tail by more than the data area, ends the read, is counted as
// corrupt, and the space up to the head is given back. Nothing is ever read outside the region.
#include <linux/perf_event.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace kvmprof {

// What the mmap page says the kernel offers, read by structure (the 2013 ABI fix, commit
// 860f085b74e9): bits 2-5 only when cap_bit0_is_deprecated (bit 1) is set. On 3.4-3.11
// kernels bit 0 meant both rdpmc and time, so they are unknown there.
struct RingCaps {
  std::string rule;  // "cap_bit0_is_deprecated set: bits 2-5 trusted" or "bit 1 clear: pre-3.12 layout, ..."
  std::optional<bool> rdpmc, time, time_zero, time_short;  // nullopt: unknown
  uint16_t time_shift = 0;
  uint32_t time_mult = 0;
  uint64_t time_zero_value = 0;
};

// Reads the capabilities with the page's seqlock (`lock`): retried while a writer changes it.
RingCaps read_caps(const perf_event_mmap_page& page);

struct DrainStats {
  size_t records = 0;   // complete records passed on
  size_t bytes = 0;     // bytes consumed (records and any discarded tail)
  bool corrupt = false; // a bad size or head ended this read; the rest up to the head was dropped
};

class RingReader {
 public:
  // `mapping`: the whole mapping, 1 + 2^n pages of `page_size`. The data area is the page's
  // data_offset/data_size when they are set, inside the mapping and a power of two; else
  // (kernels before 4.1 leave them 0) everything after page 0.
  RingReader(std::span<std::byte> mapping, size_t page_size);

  // Passes every complete record published since the last call, in order, each whole (its
  // perf_event_header first), then gives the space back to the kernel. At most `max_bytes` are
  // consumed per call, so one busy ring cannot starve the others.
  DrainStats drain(const std::function<void(std::span<const std::byte>)>& on_record,
                   size_t max_bytes = SIZE_MAX);

  // Bytes published and not yet consumed (0 when the head is behind or absurd).
  size_t pending() const;
  size_t data_size() const { return size_; }

 private:
  // Copies `len` bytes from ring position `pos`, in two pieces when they wrap the end.
  void copy_out(uint64_t pos, size_t len, std::byte* out) const;
  // The size the header at `pos` claims, or nullopt when that cannot be a record: smaller than
  // its header, or running past `head`.
  std::optional<size_t> record_size(uint64_t pos, uint64_t head) const;
  // The `len` bytes at `pos`: in place, or reassembled in scratch_ when they wrap.
  std::span<const std::byte> record_at(uint64_t pos, size_t len);

  perf_event_mmap_page* page_;
  std::byte* data_;
  size_t size_;                   // a power of two; 0 when the region holds no ring
  std::vector<std::byte> scratch_;  // for records that wrap
};

}  // namespace kvmprof
