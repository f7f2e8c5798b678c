#include "policy/pmu_format.h"

#include <charconv>
#include <string_view>

namespace kvmprof {
namespace {

struct Field {
  size_t word = 0;                                  // 0 config, 1 config1, 2 config2
  std::vector<std::pair<unsigned, unsigned>> bits;  // inclusive ranges, low to high
};

std::optional<unsigned> to_uint(std::string_view s) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v > 63) return std::nullopt;
  return v;
}

std::optional<Field> parse_field(std::string_view spec) {
  while (!spec.empty() && spec.back() == '\n') spec.remove_suffix(1);
  size_t colon = spec.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view word = spec.substr(0, colon);
  Field f;
  if (word == "config") f.word = 0;
  else if (word == "config1") f.word = 1;
  else if (word == "config2") f.word = 2;
  else return std::nullopt;
  for (size_t i = colon + 1; i <= spec.size();) {
    size_t end = std::min(spec.find(',', i), spec.size());
    std::string_view range = spec.substr(i, end - i);
    size_t dash = range.find('-');
    auto lo = to_uint(range.substr(0, dash));
    auto hi = dash == std::string_view::npos ? lo : to_uint(range.substr(dash + 1));
    if (!lo || !hi || *hi < *lo) return std::nullopt;
    f.bits.emplace_back(*lo, *hi);
    i = end + 1;
  }
  return f;
}

// Places `value` into the field's bit ranges, low bits first; false if it does not fit.
bool place(const Field& f, uint64_t value, EncodedConfig& out) {
  for (auto [lo, hi] : f.bits) {
    unsigned width = hi - lo + 1;
    uint64_t mask = width == 64 ? ~0ull : ((1ull << width) - 1);
    out.config[f.word] |= (value & mask) << lo;
    value = width == 64 ? 0 : value >> width;
  }
  return value == 0;
}

}  // namespace

std::variant<EncodedConfig, std::string> encode_pmu_terms(
    const PmuInfo& pmu, const std::vector<std::pair<std::string, uint64_t>>& terms) {
  EncodedConfig out;
  for (const auto& [name, value] : terms) {
    auto format = pmu.format.find(name);
    if (format == pmu.format.end()) {
      std::string known;
      for (const auto& [k, v] : pmu.format) known += (known.empty() ? "" : ", ") + k;
      return "PMU " + pmu.name + " has no term '" + name + "' (its format/ has: " + known + ")";
    }
    auto field = parse_field(format->second);
    if (!field) return "cannot read " + pmu.name + "/format/" + name + ": '" + format->second + "'";
    if (!place(*field, value, out)) return "value of '" + name + "' does not fit " + format->second;
  }
  return out;
}

}  // namespace kvmprof
