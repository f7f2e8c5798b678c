#include "agent/symbols/proc_maps.h"

#include <algorithm>
#include <charconv>
#include <optional>

namespace kvmprof {
namespace {

constexpr std::string_view kDeleted = " (deleted)";

std::optional<uint64_t> to_u64(std::string_view s, int base) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// The next space-separated field of `rest`, which then starts at the space after it.
std::string_view next_field(std::string_view& rest) {
  size_t begin = std::min(rest.find_first_not_of(' '), rest.size());
  size_t end = std::min(rest.find(' ', begin), rest.size());
  std::string_view field = rest.substr(begin, end - begin);
  rest.remove_prefix(end);
  return field;
}

bool is_device(std::string_view dev) {  // "fd:01"
  size_t colon = dev.find(':');
  return colon != std::string_view::npos && to_u64(dev.substr(0, colon), 16) &&
         to_u64(dev.substr(colon + 1), 16);
}

// "7f2c1a000000-7f2c1a022000 r-xp 00002000 fd:01 1234    /usr/lib/libc.so.6 (deleted)"
std::optional<MapEntry> parse_line(std::string_view line) {
  std::string_view rest = line;
  std::string_view range = next_field(rest);
  std::string_view perms = next_field(rest);
  std::string_view offset = next_field(rest);
  std::string_view dev = next_field(rest);
  std::string_view inode = next_field(rest);
  size_t dash = range.find('-');
  if (dash == std::string_view::npos || perms.size() != 4 || !is_device(dev)) return std::nullopt;
  auto start = to_u64(range.substr(0, dash), 16), end = to_u64(range.substr(dash + 1), 16);
  auto off = to_u64(offset, 16), ino = to_u64(inode, 10);
  if (!start || !end || !off || !ino || *end < *start) return std::nullopt;
  MapEntry entry{*start, *end, *off, std::string(perms), *ino, {}, false};
  // The path is the rest of the line after the padding: it may hold spaces of its own.
  rest.remove_prefix(std::min(rest.find_first_not_of(' '), rest.size()));
  if (rest.ends_with(kDeleted)) {
    rest.remove_suffix(kDeleted.size());
    entry.deleted = true;
  }
  entry.path = std::string(rest);
  return entry;
}

}  // namespace

std::vector<MapEntry> parse_maps(std::string_view text) {
  std::vector<MapEntry> maps;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = std::min(text.find('\n', pos), text.size());
    if (auto entry = parse_line(text.substr(pos, eol - pos))) maps.push_back(std::move(*entry));
    pos = eol + 1;
  }
  return maps;
}

const MapEntry* find_map(const std::vector<MapEntry>& maps, uint64_t addr) {
  auto it = std::upper_bound(maps.begin(), maps.end(), addr,
                             [](uint64_t a, const MapEntry& m) { return a < m.start; });
  if (it == maps.begin()) return nullptr;
  --it;
  return addr < it->end && it->perms.find('x') != std::string::npos ? &*it : nullptr;
}

}  // namespace kvmprof
