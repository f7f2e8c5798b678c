#pragma once
// Decoding of the records a sampling ring holds (include/uapi/linux/perf_event.h, enum
// perf_event_type): PERF_RECORD_SAMPLE with the sample_type kvmprof asks for, LOST,
// LOST_SAMPLES, THROTTLE/UNTHROTTLE, and the sample_id trailer that sample_id_all appends to
// every non-sample record. The bytes come from the kernel, or from a fuzzer: every length and
// count is checked against the record's own size, and a record that does not fit is an error,
// never a read outside it.
#include <linux/perf_event.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

#include "agent/system/result.h"

namespace kvmprof {

// misc & PERF_RECORD_MISC_CPUMODE_MASK: who was running when the sample was taken (six values,
// 0 to 5: counts are kept in arrays indexed by them).
enum class SampleMode { kUnknown, kHostKernel, kHostUser, kHypervisor, kGuestKernel, kGuestUser };

SampleMode sample_mode(uint16_t misc);
// The metric label: "unknown", "host_kernel", "host_user", "hypervisor", "guest_kernel", "guest_user".
std::string_view to_string(SampleMode mode);
inline bool is_guest(SampleMode m) { return m == SampleMode::kGuestKernel || m == SampleMode::kGuestUser; }

// The layout the records were written with: the event's sample_type and sample_id_all.
struct RecordLayout {
  uint64_t sample_type = 0;  // only IDENTIFIER, IP, TID, TIME, ID, STREAM_ID, CPU, PERIOD, CALLCHAIN are decoded
  bool sample_id_all = false;
};

struct SampleRecord {
  SampleMode mode = SampleMode::kUnknown;
  uint64_t id = 0;      // PERF_SAMPLE_IDENTIFIER (or ID)
  uint64_t ip = 0;      // the guest RIP for guest samples
  uint32_t pid = 0, tid = 0;
  uint64_t time = 0;
  uint64_t period = 0;
  // Callchain IPs with the PERF_CONTEXT_* markers taken out, leaf first: kernel frames, then
  // user frames. A guest sample has none (the kernel writes only the two markers).
  std::vector<uint64_t> kernel_stack;
  std::vector<uint64_t> user_stack;
};

struct LostRecord {         // PERF_RECORD_LOST: the ring was full
  uint64_t id = 0;
  uint64_t lost = 0;
};
struct LostSamplesRecord {  // PERF_RECORD_LOST_SAMPLES: dropped inside the kernel
  uint64_t lost = 0;
};
struct ThrottleRecord {     // PERF_RECORD_THROTTLE / UNTHROTTLE
  bool throttled = true;
  uint64_t time = 0, id = 0, stream_id = 0;
};
struct OtherRecord {        // any other record type: skipped
  uint32_t type = 0;
};

using PerfRecord = std::variant<SampleRecord, LostRecord, LostSamplesRecord, ThrottleRecord, OtherRecord>;

// Decodes one whole record (header included) as RingReader passes it. With sample_id_all, a
// non-sample record's sample_id trailer must have the size its sample_type gives.
Result<PerfRecord> decode_record(std::span<const std::byte> record, const RecordLayout& layout);

}  // namespace kvmprof
