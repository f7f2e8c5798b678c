#pragma once
// RingWriter plays the kernel's side of a perf mmap ring over heap memory: page 0 a
// perf_event_mmap_page, then 2^n data pages of 4096 bytes, written and published the way
// kernel/events/ring_buffer.c does it, so RingReader can be tested without perf_event_open.
// The record builders lay records out as kernel/events/core.c writes them. Each kernel rule
// names its source (Linux 6.x).
#include <linux/perf_event.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <vector>

#include "agent/system/perf_record.h"

namespace kvmprof::testing {

inline constexpr size_t kRingPageSize = 4096;

// What a sample_id trailer holds; the kernel copies it from the sample being written
// (perf_event_header__init_id() fills it from the perf_sample_data).
struct SampleIdValues {
  uint32_t pid = 0, tid = 0;
  uint64_t time = 0, id = 0, stream_id = 0;
  uint32_t cpu = 0;
};

// The fields of a PERF_RECORD_SAMPLE; the layout's sample_type picks which are written.
struct SampleFields {
  uint16_t misc = PERF_RECORD_MISC_USER;
  uint64_t id = 0, ip = 0;
  uint32_t pid = 0, tid = 0;
  uint64_t time = 0, addr = 0, stream_id = 0;
  uint32_t cpu = 0;
  uint64_t period = 0;
  std::vector<uint64_t> callchain;  // as the kernel writes it, PERF_CONTEXT_* markers included
};

// Appends native-endian fields behind a perf_event_header whose size it fills in at the end.
class RecordBuilder {
 public:
  RecordBuilder(uint32_t type, uint16_t misc) {
    perf_event_header header{type, misc, 0};
    put(header);
  }
  template <class T>
  RecordBuilder& put(const T& value) {
    size_t at = bytes_.size();
    bytes_.resize(at + sizeof(T));
    std::memcpy(bytes_.data() + at, &value, sizeof(T));
    return *this;
  }
  std::vector<std::byte> finish() {
    auto size = static_cast<uint16_t>(bytes_.size());
    std::memcpy(bytes_.data() + offsetof(perf_event_header, size), &size, sizeof(size));
    return std::move(bytes_);
  }

 private:
  std::vector<std::byte> bytes_;
};

// The sample_id trailer sample_id_all appends to every non-sample record, in the order of
// kernel/events/core.c perf_event__output_id_sample(): TID, TIME, ID, STREAM_ID, CPU, IDENTIFIER.
inline void put_sample_id(RecordBuilder& out, const RecordLayout& layout,
                          const SampleIdValues& sid) {
  if (!layout.sample_id_all) return;
  uint64_t type = layout.sample_type;
  if (type & PERF_SAMPLE_TID) out.put(sid.pid).put(sid.tid);
  if (type & PERF_SAMPLE_TIME) out.put(sid.time);
  if (type & PERF_SAMPLE_ID) out.put(sid.id);
  if (type & PERF_SAMPLE_STREAM_ID) out.put(sid.stream_id);
  if (type & PERF_SAMPLE_CPU) out.put(sid.cpu).put(uint32_t{0});
  if (type & PERF_SAMPLE_IDENTIFIER) out.put(sid.id);
}

// PERF_RECORD_SAMPLE in the order of kernel/events/core.c perf_output_sample() (bits READ and
// beyond CALLCHAIN are not written).
inline std::vector<std::byte> sample_record(const SampleFields& s, const RecordLayout& layout) {
  uint64_t type = layout.sample_type;
  RecordBuilder out(PERF_RECORD_SAMPLE, s.misc);
  if (type & PERF_SAMPLE_IDENTIFIER) out.put(s.id);
  if (type & PERF_SAMPLE_IP) out.put(s.ip);
  if (type & PERF_SAMPLE_TID) out.put(s.pid).put(s.tid);
  if (type & PERF_SAMPLE_TIME) out.put(s.time);
  if (type & PERF_SAMPLE_ADDR) out.put(s.addr);
  if (type & PERF_SAMPLE_ID) out.put(s.id);
  if (type & PERF_SAMPLE_STREAM_ID) out.put(s.stream_id);
  if (type & PERF_SAMPLE_CPU) out.put(s.cpu).put(uint32_t{0});
  if (type & PERF_SAMPLE_PERIOD) out.put(s.period);
  if (type & PERF_SAMPLE_CALLCHAIN) {
    out.put(uint64_t{s.callchain.size()});
    for (uint64_t ip : s.callchain) out.put(ip);
  }
  return out.finish();
}

// PERF_RECORD_LOST {id, lost}, misc 0: kernel/events/ring_buffer.c __perf_output_begin().
inline std::vector<std::byte> lost_record(uint64_t id, uint64_t lost, const RecordLayout& layout,
                                          const SampleIdValues& sid = {}) {
  RecordBuilder out(PERF_RECORD_LOST, 0);
  out.put(id).put(lost);
  put_sample_id(out, layout, sid);
  return out.finish();
}

// PERF_RECORD_LOST_SAMPLES {lost}: kernel/events/core.c perf_log_lost_samples().
inline std::vector<std::byte> lost_samples_record(uint64_t lost, const RecordLayout& layout,
                                                  const SampleIdValues& sid = {}) {
  RecordBuilder out(PERF_RECORD_LOST_SAMPLES, 0);
  out.put(lost);
  put_sample_id(out, layout, sid);
  return out.finish();
}

// PERF_RECORD_THROTTLE / UNTHROTTLE {time, id, stream_id}: kernel/events/core.c
// perf_log_throttle().
inline std::vector<std::byte> throttle_record(bool throttled, uint64_t time, uint64_t id,
                                              uint64_t stream_id, const RecordLayout& layout,
                                              const SampleIdValues& sid = {}) {
  RecordBuilder out(throttled ? PERF_RECORD_THROTTLE : PERF_RECORD_UNTHROTTLE, 0);
  out.put(time).put(id).put(stream_id);
  put_sample_id(out, layout, sid);
  return out.finish();
}

// `total_bytes` bytes (at least a header) whose header claims `header_size`, whatever that is.
inline std::vector<std::byte> raw_record(uint32_t type, uint16_t header_size, size_t total_bytes) {
  std::vector<std::byte> bytes(std::max(total_bytes, sizeof(perf_event_header)));
  perf_event_header header{type, 0, header_size};
  std::memcpy(bytes.data(), &header, sizeof(header));
  return bytes;
}

class RingWriter {
 public:
  // `data_pages` must be a power of two (kernel/events/core.c perf_mmap(): "nr_pages != 0 &&
  // !is_power_of_2(nr_pages)" is EINVAL). `layout` and `sid` shape the LOST records it writes.
  explicit RingWriter(size_t data_pages = 2, RecordLayout layout = {}, SampleIdValues sid = {})
      : pages_(1 + data_pages), size_(data_pages * kRingPageSize), layout_(layout), sid_(sid) {
    page_ = new (pages_.data()) perf_event_mmap_page{};
    // kernel/events/core.c perf_event_init_userpage().
    page_->cap_bit0_is_deprecated = 1;
    page_->size = offsetof(perf_event_mmap_page, __reserved);
    page_->data_offset = kRingPageSize;
    page_->data_size = size_;
  }
  RingWriter(const RingWriter&) = delete;
  RingWriter& operator=(const RingWriter&) = delete;

  std::span<std::byte> mapping() { return {pages_.front().bytes, pages_.size() * kRingPageSize}; }
  perf_event_mmap_page& page() { return *page_; }
  size_t data_size() const { return size_; }
  uint64_t head() const { return head_; }
  uint64_t refused() const { return refused_; }  // records that did not fit, all told

  // One record, as kernel/events/ring_buffer.c __perf_output_begin() + perf_output_end() write
  // it. False when it does not fit: counted, and reported by a PERF_RECORD_LOST written just
  // before the next record that fits.
  bool write(std::span<const std::byte> record) {
    // "if (unlikely(have_lost)) size += sizeof(lost_event) + id_header_size": the LOST record
    // must fit along with the record.
    std::vector<std::byte> lost =
        lost_ ? lost_record(sid_.id, lost_, layout_, sid_) : std::vector<std::byte>{};
    // The kernel reads data_tail with READ_ONCE and a control dependency (barrier A), an
    // acquire here, pairing with the reader's release store.
    uint64_t tail = std::atomic_ref<__u64>(page_->data_tail).load(std::memory_order_acquire);
    if (lost.size() + record.size() > circ_space(tail)) {
      ++lost_;  // fail: local_inc(&rb->lost)
      ++refused_;
      return false;
    }
    put(lost);
    put(record);
    lost_ = 0;  // local_xchg(&rb->lost, 0)
    publish();
    return true;
  }

  // Raw access for corrupt cases: the head and tail as published, bytes at any ring position.
  void set_head(uint64_t head) {
    head_ = head;
    publish();
  }
  void set_tail(uint64_t tail) {
    std::atomic_ref<__u64>(page_->data_tail).store(tail, std::memory_order_release);
  }
  void write_raw(uint64_t pos, std::span<const std::byte> bytes) {
    for (std::byte b : bytes) data()[pos++ & (size_ - 1)] = b;
  }

 private:
  struct alignas(kRingPageSize) Page {
    std::byte bytes[kRingPageSize];
  };

  std::byte* data() { return pages_[1].bytes; }

  // include/linux/circ_buf.h CIRC_SPACE(head, tail, size) as ring_buffer_has_space() uses it:
  // one byte always stays free, so a full ring is never mistaken for an empty one.
  size_t circ_space(uint64_t tail) const {
    return static_cast<size_t>((tail - (head_ + 1)) & (size_ - 1));
  }

  // Records are copied in at head, in two pieces when they pass the end (__output_copy()).
  void put(std::span<const std::byte> bytes) {
    write_raw(head_, bytes);
    head_ += bytes.size();
  }

  // perf_output_put_handle(): smp_wmb() (barrier B) then data_head = head; a release store.
  void publish() {
    std::atomic_ref<__u64>(page_->data_head).store(head_, std::memory_order_release);
  }

  std::vector<Page> pages_;  // zeroed, like the kernel's pages (__GFP_ZERO)
  size_t size_;
  RecordLayout layout_;
  SampleIdValues sid_;
  perf_event_mmap_page* page_ = nullptr;
  uint64_t head_ = 0;  // rb->head: where the next record goes
  uint64_t lost_ = 0;  // rb->lost: refused since the last LOST record
  uint64_t refused_ = 0;
};

}  // namespace kvmprof::testing
