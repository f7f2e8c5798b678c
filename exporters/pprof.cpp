#include "exporters/pprof.h"

// Hand-encoded rather than through libprotobuf: a profile needs a handful of varint and
// length-delimited fields, a few hundred lines, which is what Go's runtime/pprof/protobuf.go and
// google/pprof's profile/proto.go do too. So the build needs no protoc and no generated code.

#include <cstdint>
#include <map>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kvmprof {
namespace {

// Field numbers of google/pprof proto/profile.proto, per message.
namespace profile_field {
enum : int { kSampleType = 1, kSample, kMapping, kLocation, kFunction, kStringTable };
enum : int { kTimeNanos = 9, kDurationNanos, kPeriodType, kPeriod, kComment, kDefaultSampleType };
}  // namespace profile_field
namespace value_type_field {
enum : int { kType = 1, kUnit };
}
namespace sample_field {
enum : int { kLocationId = 1, kValue, kLabel };
}
namespace label_field {
enum : int { kKey = 1, kStr, kNum, kNumUnit };
}
namespace mapping_field {
enum : int { kId = 1, kMemoryStart, kMemoryLimit, kFileOffset, kFilename, kBuildId };
enum : int { kHasFunctions = 7 };
}  // namespace mapping_field
namespace location_field {
enum : int { kId = 1, kMappingId, kAddress, kLine };
}
namespace line_field {
enum : int { kFunctionId = 1 };
}
namespace function_field {
enum : int { kId = 1, kName, kSystemName, kFilename };
}

// A protobuf message in the making: fields appended in wire format, in any order (decoders
// accept that). Zero varints are left out, as proto3 does: zero is the default.
class Message {
 public:
  void varint(int field, uint64_t value) {
    if (value == 0) return;
    key(field, kVarint);
    raw_varint(value);
  }
  // Negative values take ten bytes (two's complement), as for protobuf's int64.
  void int64(int field, int64_t value) { varint(field, static_cast<uint64_t>(value)); }
  void bytes(int field, std::string_view value) {
    key(field, kLengthDelimited);
    raw_varint(value.size());
    out_.append(value);
  }
  void message(int field, const Message& m) { bytes(field, m.out_); }
  // A packed repeated varint field: one length-delimited run, as Go writes sample fields.
  template <class Int>
  void packed(int field, const std::vector<Int>& values) {
    if (values.empty()) return;
    Message run;
    for (Int v : values) run.raw_varint(static_cast<uint64_t>(v));
    message(field, run);
  }
  std::string take() { return std::move(out_); }

 private:
  enum WireType { kVarint = 0, kLengthDelimited = 2 };
  void key(int field, WireType type) { raw_varint(static_cast<uint64_t>(field) << 3 | type); }
  void raw_varint(uint64_t v) {
    for (; v >= 0x80; v >>= 7) out_.push_back(static_cast<char>(v | 0x80));
    out_.push_back(static_cast<char>(v));
  }
  std::string out_;
};

// The string table: each distinct string once, "" at index 0 as pprof requires.
class Strings {
 public:
  int64_t operator()(const std::string& s) {
    auto [it, added] = index_.try_emplace(s, static_cast<int64_t>(table_.size()));
    if (added) table_.push_back(s);
    return it->second;
  }
  const std::vector<std::string>& table() const { return table_; }

 private:
  std::unordered_map<std::string, int64_t> index_{{"", 0}};
  std::vector<std::string> table_{""};
};

Message value_type(Strings& strings, const std::string& type, const std::string& unit) {
  Message m;
  m.int64(value_type_field::kType, strings(type));
  m.int64(value_type_field::kUnit, strings(unit));
  return m;
}

Message string_label(Strings& strings, const std::string& key, const std::string& value) {
  Message m;
  m.int64(label_field::kKey, strings(key));
  m.int64(label_field::kStr, strings(value));
  return m;
}

// pprof drops a numeric label whose num and num_unit are both zero, and vcpu 0 is the most
// common label there is: the key doubles as the unit so that it stays ("vcpu: 0 vcpu").
Message numeric_label(Strings& strings, const std::string& key, int64_t value) {
  Message m;
  m.int64(label_field::kKey, strings(key));
  m.int64(label_field::kNum, value);
  m.int64(label_field::kNumUnit, strings(key));
  return m;
}

Message sample(Strings& strings, const ProfileSample& s) {
  Message m;
  m.packed(sample_field::kLocationId, s.locations);  // location ids are the 1-based indexes
  m.packed(sample_field::kValue, std::vector<int64_t>{s.count, s.nanos});
  for (const auto& [key, value] : s.labels) {
    // str 0 ("") reads as no label at all in pprof: leave it out rather than send a hole.
    if (!value.empty()) m.message(sample_field::kLabel, string_label(strings, key, value));
  }
  for (const auto& [key, value] : s.num_labels) {
    m.message(sample_field::kLabel, numeric_label(strings, key, value));
  }
  return m;
}

Message mapping(Strings& strings, const ProfileMapping& mapping, uint64_t id) {
  Message m;
  m.varint(mapping_field::kId, id);
  m.varint(mapping_field::kMemoryStart, mapping.start);
  m.varint(mapping_field::kMemoryLimit, mapping.limit);
  m.varint(mapping_field::kFileOffset, mapping.offset);
  m.int64(mapping_field::kFilename, strings(mapping.file));
  m.int64(mapping_field::kBuildId, strings(mapping.build_id));
  m.varint(mapping_field::kHasFunctions, mapping.has_functions);
  return m;
}

// Functions are shared by every location of the same (name, filename); ids in order of first use.
class Functions {
 public:
  uint64_t id(const ProfileLocation& l) {
    auto [it, added] = ids_.try_emplace({l.function, l.filename}, ids_.size() + 1);
    if (added) order_.push_back(&it->first);
    return it->second;
  }
  void encode(Strings& strings, Message& profile) const {
    for (size_t i = 0; i < order_.size(); ++i) {
      const auto& [name, filename] = *order_[i];
      Message m;
      m.varint(function_field::kId, i + 1);
      m.int64(function_field::kName, strings(name));
      m.int64(function_field::kSystemName, strings(name));  // no mangled name is kept
      m.int64(function_field::kFilename, strings(filename));
      profile.message(profile_field::kFunction, m);
    }
  }

 private:
  using Key = std::pair<std::string, std::string>;
  std::map<Key, uint64_t> ids_;
  std::vector<const Key*> order_;  // map nodes do not move
};

Message location(Functions& functions, const ProfileLocation& l, uint64_t id) {
  Message m;
  m.varint(location_field::kId, id);
  m.varint(location_field::kMappingId, l.mapping);  // mapping ids are the 1-based indexes
  m.varint(location_field::kAddress, l.address);
  if (!l.function.empty()) {  // unnamed: no line, so pprof shows the address
    Message line;
    line.varint(line_field::kFunctionId, functions.id(l));
    m.message(location_field::kLine, line);
  }
  return m;
}

}  // namespace

std::string encode_pprof(const Profile& profile) {
  Strings strings;
  Message out;
  out.message(profile_field::kSampleType, value_type(strings, "samples", "count"));
  out.message(profile_field::kSampleType, value_type(strings, "cpu", "nanoseconds"));
  for (const auto& s : profile.samples) out.message(profile_field::kSample, sample(strings, s));
  for (size_t i = 0; i < profile.mappings.size(); ++i) {
    out.message(profile_field::kMapping, mapping(strings, profile.mappings[i], i + 1));
  }
  Functions functions;
  for (size_t i = 0; i < profile.locations.size(); ++i) {
    out.message(profile_field::kLocation, location(functions, profile.locations[i], i + 1));
  }
  functions.encode(strings, out);
  out.int64(profile_field::kTimeNanos, profile.time_nanos);
  out.int64(profile_field::kDurationNanos, profile.duration_nanos);
  out.message(profile_field::kPeriodType, value_type(strings, "cpu", "nanoseconds"));
  out.int64(profile_field::kPeriod, profile.period_nanos);
  for (const auto& c : profile.comments) {
    if (!c.empty()) out.int64(profile_field::kComment, strings(c));  // index 0 would be lost
  }
  if (!profile.default_sample_type.empty()) out.int64(profile_field::kDefaultSampleType, strings(profile.default_sample_type));
  // Last, once every string is interned.
  for (const auto& s : strings.table()) out.bytes(profile_field::kStringTable, s);
  return out.take();
}

}  // namespace kvmprof
