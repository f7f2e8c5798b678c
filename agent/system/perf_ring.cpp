#include "agent/system/perf_ring.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>

namespace kvmprof {
namespace {

constexpr size_t kHeaderSize = sizeof(perf_event_header);
// The seqlock is held only while the kernel rewrites a few words (perf_event_update_userpage());
// a lock that never settles is a hostile or dead page, not one worth spinning on.
constexpr int kMaxSeqlockRetries = 1000;

// Loads and stores of page words shared with the writer go through atomic_ref: the kernel
// updates them on another CPU (uapi comment on perf_event_mmap_page).
template <class T>
T load(const T& word, std::memory_order order) {
  return std::atomic_ref<T>(const_cast<T&>(word)).load(order);
}

void store_release(__u64& word, uint64_t value) {
  std::atomic_ref<__u64>(word).store(value, std::memory_order_release);
}

// The data area the page describes, when it is one: nonzero, a power of two, after the page
// fields and inside the mapping (data_offset/data_size exist since 4.1).
bool valid_data_area(uint64_t offset, uint64_t size, size_t mapping_size) {
  return size != 0 && std::has_single_bit(size) && offset >= sizeof(perf_event_mmap_page) &&
         offset <= mapping_size && size <= mapping_size - offset;
}

// Kernels before 4.1 leave data_offset/data_size 0: the data follows page 0. A mapping that is
// not 1 + 2^n pages is cut to the largest power of two that fits, so masking stays in bounds.
size_t fallback_data_size(size_t mapping_size, size_t page_size) {
  if (page_size < sizeof(perf_event_mmap_page) || mapping_size <= page_size) return 0;
  return std::bit_floor(mapping_size - page_size);
}

}  // namespace

RingReader::RingReader(std::span<std::byte> mapping, size_t page_size)
    : page_(nullptr), data_(nullptr), size_(0) {
  // atomic_ref needs the page words aligned; a region too small for the page holds no ring.
  bool aligned = reinterpret_cast<uintptr_t>(mapping.data()) % alignof(perf_event_mmap_page) == 0;
  if (!aligned || mapping.size() < sizeof(perf_event_mmap_page)) return;
  page_ = reinterpret_cast<perf_event_mmap_page*>(mapping.data());
  uint64_t offset = page_->data_offset, size = page_->data_size;
  if (!valid_data_area(offset, size, mapping.size())) {
    offset = page_size;
    size = fallback_data_size(mapping.size(), page_size);
  }
  size_ = static_cast<size_t>(size);
  data_ = size_ ? mapping.data() + offset : nullptr;
}

size_t RingReader::pending() const {
  if (size_ == 0) return 0;
  uint64_t head = load(page_->data_head, std::memory_order_acquire);
  uint64_t used = head - load(page_->data_tail, std::memory_order_relaxed);
  return used <= size_ ? static_cast<size_t>(used) : 0;
}

void RingReader::copy_out(uint64_t pos, size_t len, std::byte* out) const {
  size_t offset = static_cast<size_t>(pos & (size_ - 1));
  size_t first = std::min(len, size_ - offset);
  std::memcpy(out, data_ + offset, first);
  std::memcpy(out + first, data_, len - first);
}

std::span<const std::byte> RingReader::record_at(uint64_t pos, size_t len) {
  size_t offset = static_cast<size_t>(pos & (size_ - 1));
  if (len <= size_ - offset) return {data_ + offset, len};
  scratch_.resize(len);  // wraps: reassembled in two pieces
  copy_out(pos, len, scratch_.data());
  return scratch_;
}

std::optional<size_t> RingReader::record_size(uint64_t pos, uint64_t head) const {
  const uint64_t available = head - pos;
  if (available < kHeaderSize) return std::nullopt;
  perf_event_header header{};
  copy_out(pos, kHeaderSize, reinterpret_cast<std::byte*>(&header));
  if (header.size < kHeaderSize || header.size > available) return std::nullopt;
  return header.size;
}

// Follows tools/lib/perf/mmap.c perf_mmap__read(): header first, size checked against what
// the head says is there, the record handed on whole. The tail is stored once, after the
// callback has seen every record, because the kernel may overwrite anything behind it.
DrainStats RingReader::drain(const std::function<void(std::span<const std::byte>)>& on_record,
                             size_t max_bytes) {
  DrainStats stats;
  if (size_ == 0) return stats;
  // Acquire pairs with the kernel's smp_wmb() before it publishes data_head
  // (kernel/events/ring_buffer.c perf_output_put_handle(), barrier B/C).
  const uint64_t head = load(page_->data_head, std::memory_order_acquire);
  const uint64_t tail = load(page_->data_tail, std::memory_order_relaxed);  // only we write it
  uint64_t pos = tail;
  stats.corrupt = head - tail > size_;  // an absurd head: nothing between tail and head is data
  while (!stats.corrupt && pos != head) {
    auto size = record_size(pos, head);
    stats.corrupt = !size;
    if (stats.corrupt || (stats.records > 0 && stats.bytes + *size > max_bytes)) break;
    on_record(record_at(pos, *size));
    pos += *size;
    stats.bytes += *size;
    ++stats.records;
  }
  if (stats.corrupt) {
    // Give back all space up to the head: the kernel stops writing when the ring looks full
    // (ring_buffer_has_space()), so a stuck tail would lose every later record.
    if (head - tail <= size_) stats.bytes += static_cast<size_t>(head - pos);
    pos = head;
  }
  // Release orders our reads of the records before the kernel may reuse the space
  // (uapi comment: "smp_mb() ... data_tail = tail", barrier D with A in perf_output_begin()).
  store_release(page_->data_tail, pos);
  return stats;
}

RingCaps read_caps(const perf_event_mmap_page& page) {
  uint64_t capabilities = 0;
  RingCaps caps;
  bool settled = false;
  // The uapi read loop: seq = lock; barrier; read; barrier; retry while lock != seq. The kernel
  // bumps lock before and after an update (perf_event_update_userpage()), so odd is mid-update.
  // The fields are loaded with acquire, which keeps the second lock load after them as the
  // second barrier would (a fence would do the same, but ThreadSanitizer cannot follow fences).
  constexpr auto kAcquire = std::memory_order_acquire;
  for (int i = 0; i < kMaxSeqlockRetries && !settled; ++i) {
    uint32_t seq = load(page.lock, kAcquire);
    capabilities = load(page.capabilities, kAcquire);
    caps.time_shift = load(page.time_shift, kAcquire);
    caps.time_mult = load(page.time_mult, kAcquire);
    caps.time_zero_value = load(page.time_zero, kAcquire);
    settled = seq % 2 == 0 && load(page.lock, std::memory_order_relaxed) == seq;
  }
  // Commit 860f085b74e9: bit 1 (cap_bit0_is_deprecated) says bits 2-5 mean what they say.
  if (capabilities & 2) {
    caps.rule = "cap_bit0_is_deprecated set: bits 2-5 trusted";
    caps.rdpmc = (capabilities >> 2) & 1;
    caps.time = (capabilities >> 3) & 1;
    caps.time_zero = (capabilities >> 4) & 1;
    caps.time_short = (capabilities >> 5) & 1;
  } else {
    caps.rule = "bit 1 clear: pre-3.12 layout, bit 0 meant both rdpmc and time: all unknown";
  }
  if (!settled) caps.rule += " (seqlock never settled: fields may be torn)";
  return caps;
}

}  // namespace kvmprof
