#include "agent/system/perf_group.h"

#include <cstring>

namespace kvmprof {
namespace {

constexpr uint64_t kReadFormat = PERF_FORMAT_GROUP | PERF_FORMAT_ID |
                                 PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;

}  // namespace

Result<PerfGroup> PerfGroup::open(PerfBackend& backend, pid_t tid, const std::vector<EventAttr>& events,
                                  const std::vector<size_t>& slots, ErrorCounts& errors) {
  PerfGroup group(events.size());
  for (size_t slot : slots) {
    perf_event_attr attr = events[slot].attr;
    attr.read_format = kReadFormat;
    int leader = group.fds_.empty() ? -1 : group.fds_.front().get();
    auto fd = backend.open(attr, tid, -1, leader);  // attr.size was negotiated when the event was planned
    Result<uint64_t> id = fd.ok() ? backend.event_id(*fd) : fd.error();
    if (!id.ok()) {
      count_error(errors, events[slot].name, id.error());
      return Error{id.error().err, "open " + events[slot].name + " on thread " + std::to_string(tid)};
    }
    group.slot_by_id_[*id] = slot;
    group.fds_.push_back(std::move(*fd));
  }
  return group;
}

Result<GroupReading> PerfGroup::read(PerfBackend& backend) const {
  std::vector<std::byte> buf((3 + 2 * fds_.size()) * sizeof(uint64_t));
  auto n = backend.read(fds_.front(), buf);
  if (!n.ok()) return n.error();
  return decode_group_read(std::span(buf.data(), *n), slots_, slot_by_id_);
}

Result<GroupReading> decode_group_read(std::span<const std::byte> bytes, size_t slots,
                                       const std::map<uint64_t, size_t>& slot_by_id) {
  auto word = [&](size_t i) {
    uint64_t v = 0;
    std::memcpy(&v, bytes.data() + i * sizeof(uint64_t), sizeof(v));
    return v;
  };
  size_t words = bytes.size() / sizeof(uint64_t);
  if (words < 3) return Error{0, "perf group read: short buffer"};
  uint64_t nr = word(0);
  if (nr > (words - 3) / 2) return Error{0, "perf group read: count exceeds buffer"};
  GroupReading reading{word(1), word(2), std::vector<std::optional<uint64_t>>(slots)};
  for (uint64_t i = 0; i < nr; ++i) {
    auto slot = slot_by_id.find(word(3 + 2 * i + 1));
    if (slot == slot_by_id.end() || slot->second >= slots) {
      return Error{0, "perf group read: unknown event id"};
    }
    reading.raw[slot->second] = word(3 + 2 * i);
  }
  return reading;
}

}  // namespace kvmprof
