#include "agent/system/perf_record.h"

#include <cstring>
#include <optional>
#include <string>

namespace kvmprof {
namespace {

// The sample_type bits decode_record understands: everything up to CALLCHAIN in the kernel's
// output order (kernel/events/core.c perf_output_sample()) except READ. ADDR is skipped.
constexpr uint64_t kDecodedSampleType = PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_IP | PERF_SAMPLE_TID |
                                        PERF_SAMPLE_TIME | PERF_SAMPLE_ADDR | PERF_SAMPLE_ID |
                                        PERF_SAMPLE_STREAM_ID | PERF_SAMPLE_CPU |
                                        PERF_SAMPLE_PERIOD | PERF_SAMPLE_CALLCHAIN;

// Reads the record front to back; every read is checked against what is left.
class Cursor {
 public:
  explicit Cursor(std::span<const std::byte> bytes) : bytes_(bytes) {}

  size_t remaining() const { return bytes_.size() - pos_; }

  template <class T>
  bool read(T& out) {
    if (remaining() < sizeof(T)) return false;
    std::memcpy(&out, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }

 private:
  std::span<const std::byte> bytes_;
  size_t pos_ = 0;
};

// Records are built in place inside the PerfRecord they are returned in: moving a finished
// alternative into the variant trips GCC 12's -Wmaybe-uninitialized under AddressSanitizer.
template <class T>
T& make(PerfRecord& out) {
  return out.emplace<T>();
}

Error short_record(const char* what) {
  return Error{0, std::string("perf record: ends inside ") + what};
}

// Reads `value` when `bit` is in `sample_type`; false only when the record ends first.
template <class T>
bool field(Cursor& in, uint64_t sample_type, uint64_t bit, T& value) {
  return (sample_type & bit) == 0 || in.read(value);
}

// The callchain is {nr; ips[nr]} with PERF_CONTEXT_* markers between the frames
// (kernel/events/callchain.c get_perf_callchain()). A guest sample has only the KERNEL and USER
// markers: x86 perf_callchain_kernel()/perf_callchain_user() return at once under guest state.
std::optional<Error> read_callchain(Cursor& in, SampleRecord& sample) {
  uint64_t nr = 0;
  if (!in.read(nr)) return short_record("callchain nr");
  if (nr > in.remaining() / sizeof(uint64_t)) {
    return Error{0, "perf record: callchain nr exceeds the record"};
  }
  std::vector<uint64_t>* stack = nullptr;  // frames before any marker have no known context
  sample.kernel_stack.reserve(nr);  // one allocation: the frames are nearly all kernel ones
  for (uint64_t i = 0; i < nr; ++i) {
    uint64_t ip = 0;
    in.read(ip);  // cannot fail: nr was checked against what is left
    if (ip < static_cast<uint64_t>(PERF_CONTEXT_MAX)) {
      if (stack) stack->push_back(ip);
    } else if (ip == static_cast<uint64_t>(PERF_CONTEXT_KERNEL)) {
      stack = &sample.kernel_stack;
    } else if (ip == static_cast<uint64_t>(PERF_CONTEXT_USER)) {
      stack = &sample.user_stack;
    } else {
      stack = nullptr;  // HV and GUEST* frames: not host frames, dropped
    }
  }
  return std::nullopt;
}

// PERF_RECORD_SAMPLE, fields in the order of the uapi comment on PERF_RECORD_SAMPLE.
Result<PerfRecord> decode_sample(uint16_t misc, Cursor in, uint64_t sample_type) {
  if (sample_type & PERF_SAMPLE_READ) {
    return Error{0, "perf record: PERF_SAMPLE_READ is not supported"};
  }
  if (sample_type & ~kDecodedSampleType) {
    return Error{0, "perf record: sample_type bits after CALLCHAIN are not supported"};
  }
  PerfRecord out;
  SampleRecord& s = make<SampleRecord>(out);
  s.mode = sample_mode(misc);
  uint64_t addr = 0, stream_id = 0, cpu_res = 0;  // read past, not kept
  if (!field(in, sample_type, PERF_SAMPLE_IDENTIFIER, s.id)) return short_record("identifier");
  if (!field(in, sample_type, PERF_SAMPLE_IP, s.ip)) return short_record("ip");
  if (!field(in, sample_type, PERF_SAMPLE_TID, s.pid) ||
      !field(in, sample_type, PERF_SAMPLE_TID, s.tid)) {
    return short_record("pid/tid");
  }
  if (!field(in, sample_type, PERF_SAMPLE_TIME, s.time)) return short_record("time");
  if (!field(in, sample_type, PERF_SAMPLE_ADDR, addr)) return short_record("addr");
  if (!field(in, sample_type, PERF_SAMPLE_ID, s.id)) return short_record("id");
  if (!field(in, sample_type, PERF_SAMPLE_STREAM_ID, stream_id)) return short_record("stream_id");
  if (!field(in, sample_type, PERF_SAMPLE_CPU, cpu_res)) return short_record("cpu");
  if (!field(in, sample_type, PERF_SAMPLE_PERIOD, s.period)) return short_record("period");
  if (sample_type & PERF_SAMPLE_CALLCHAIN) {
    if (auto error = read_callchain(in, s)) return *error;
  }
  // Samples carry no sample_id trailer, so bytes left over mean the layout is not the one the
  // event was opened with: decoding on would misread every field.
  if (in.remaining() != 0) return Error{0, "perf record: sample longer than its sample_type says"};
  return out;
}

// Non-sample records: fixed fields, then the sample_id trailer when sample_id_all is set
// (kernel/events/core.c perf_event__output_id_sample(): TID, TIME, ID, STREAM_ID, CPU,
// IDENTIFIER, each present by its sample_type bit). The fixed fields hold the ids kvmprof
// needs; the trailer must fill the rest of the record exactly, or the layout is not the
// event's and the record is refused.
std::optional<Error> check_trailer(size_t trailer_bytes, const RecordLayout& layout) {
  if (!layout.sample_id_all) return std::nullopt;
  size_t words = 0;
  for (uint64_t bit : {PERF_SAMPLE_TID, PERF_SAMPLE_TIME, PERF_SAMPLE_ID, PERF_SAMPLE_STREAM_ID, PERF_SAMPLE_CPU,
                       PERF_SAMPLE_IDENTIFIER}) {
    words += (layout.sample_type & bit) ? 1 : 0;
  }
  if (trailer_bytes == words * sizeof(uint64_t)) return std::nullopt;
  return Error{0, "perf record: sample_id trailer of " + std::to_string(trailer_bytes) + " bytes, its sample_type says " +
                      std::to_string(words * sizeof(uint64_t))};
}

Result<PerfRecord> decode_lost(Cursor in) {
  PerfRecord out;
  LostRecord& r = make<LostRecord>(out);
  if (!in.read(r.id) || !in.read(r.lost)) return short_record("PERF_RECORD_LOST {id, lost}");
  return out;
}

Result<PerfRecord> decode_lost_samples(Cursor in) {
  PerfRecord out;
  if (!in.read(make<LostSamplesRecord>(out).lost)) {
    return short_record("PERF_RECORD_LOST_SAMPLES {lost}");
  }
  return out;
}

Result<PerfRecord> decode_throttle(Cursor in, bool throttled) {
  PerfRecord out;
  ThrottleRecord& r = make<ThrottleRecord>(out);
  r.throttled = throttled;
  if (!in.read(r.time) || !in.read(r.id) || !in.read(r.stream_id)) {
    return short_record("PERF_RECORD_(UN)THROTTLE {time, id, stream_id}");
  }
  return out;
}

// Any other type (MMAP, COMM, SWITCH, ...) is skipped by the caller; its type is kept.
Result<PerfRecord> decode_other(uint32_t type) {
  PerfRecord out;
  make<OtherRecord>(out).type = type;
  return out;
}

}  // namespace

SampleMode sample_mode(uint16_t misc) {
  switch (misc & PERF_RECORD_MISC_CPUMODE_MASK) {
    case PERF_RECORD_MISC_KERNEL:
      return SampleMode::kHostKernel;
    case PERF_RECORD_MISC_USER:
      return SampleMode::kHostUser;
    case PERF_RECORD_MISC_HYPERVISOR:
      return SampleMode::kHypervisor;
    case PERF_RECORD_MISC_GUEST_KERNEL:
      return SampleMode::kGuestKernel;
    case PERF_RECORD_MISC_GUEST_USER:
      return SampleMode::kGuestUser;
    default:
      return SampleMode::kUnknown;
  }
}

std::string_view to_string(SampleMode mode) {
  switch (mode) {
    case SampleMode::kHostKernel:
      return "host_kernel";
    case SampleMode::kHostUser:
      return "host_user";
    case SampleMode::kHypervisor:
      return "hypervisor";
    case SampleMode::kGuestKernel:
      return "guest_kernel";
    case SampleMode::kGuestUser:
      return "guest_user";
    case SampleMode::kUnknown:
      break;
  }
  return "unknown";
}

Result<PerfRecord> decode_record(std::span<const std::byte> record, const RecordLayout& layout) {
  perf_event_header header{};
  if (record.size() < sizeof(header)) return Error{0, "perf record: shorter than its header"};
  std::memcpy(&header, record.data(), sizeof(header));
  if (header.size != record.size()) {
    return Error{0, "perf record: header size differs from the record"};
  }
  Cursor body(record.subspan(sizeof(header)));
  Result<PerfRecord> out = decode_other(header.type);
  size_t fixed = 0;  // bytes of the record's fixed fields
  switch (header.type) {
    case PERF_RECORD_SAMPLE:
      return decode_sample(header.misc, body, layout.sample_type);
    case PERF_RECORD_LOST:
      out = decode_lost(body);
      fixed = 2 * sizeof(uint64_t);
      break;
    case PERF_RECORD_LOST_SAMPLES:
      out = decode_lost_samples(body);
      fixed = sizeof(uint64_t);
      break;
    case PERF_RECORD_THROTTLE:
    case PERF_RECORD_UNTHROTTLE:
      out = decode_throttle(body, header.type == PERF_RECORD_THROTTLE);
      fixed = 3 * sizeof(uint64_t);
      break;
    default:
      return out;
  }
  if (!out.ok()) return out;
  if (auto error = check_trailer(body.remaining() - fixed, layout)) return *error;
  return out;
}

}  // namespace kvmprof
