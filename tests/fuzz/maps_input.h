#pragma once
// One fuzz input = the text of a /proc/PID/maps. fuzz_maps_input parses it with parse_maps,
// checks every entry, writes the entries back as maps lines and parses them again (the same
// entries must come back), then looks up each entry's edges (and the input's last 8 bytes as an
// address) with find_map. Used by maps_fuzz.cpp; a unit test can replay
// tests/fuzz/corpus/maps/ through it.
#include <algorithm>
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "agent/symbols/proc_maps.h"
#include "tests/fuzz/fuzz_promise.h"

namespace kvmprof::testing {

// An entry as the kernel would write it (show_map_vma), with an anonymous device.
inline std::string maps_line(const MapEntry& m) {
  char range[64], numbers[64];
  std::snprintf(range, sizeof(range), "%" PRIx64 "-%" PRIx64 " ", m.start, m.end);
  std::snprintf(numbers, sizeof(numbers), " %08" PRIx64 " 00:00 %" PRIu64 " ", m.offset, m.inode);
  std::string line = range + m.perms + numbers + m.path;  // perms and path may hold NULs
  if (m.deleted) line += " (deleted)";
  return line + "\n";
}

inline bool same_entry(const MapEntry& a, const MapEntry& b) {
  return a.start == b.start && a.end == b.end && a.offset == b.offset && a.perms == b.perms &&
         a.inode == b.inode && a.path == b.path && a.deleted == b.deleted;
}

// `expected`: the entry find_map must return, when known.
inline void fuzz_maps_lookup(const std::vector<MapEntry>& maps, uint64_t addr,
                             const MapEntry* expected = nullptr) {
  const MapEntry* m = find_map(maps, addr);
  KVMPROF_FUZZ_PROMISE(expected == nullptr || m == expected);
  if (m == nullptr) return;
  KVMPROF_FUZZ_PROMISE(m >= maps.data() && m < maps.data() + maps.size());
  // find_map returns an executable mapping whose [start, end) holds the address.
  KVMPROF_FUZZ_PROMISE(m->start <= addr && addr < m->end);
  KVMPROF_FUZZ_PROMISE(m->perms.find('x') != std::string::npos);
}

inline void fuzz_maps_input(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<MapEntry> maps = parse_maps(text);
  const size_t lines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
  KVMPROF_FUZZ_PROMISE(maps.size() <= lines);
  bool sorted = true;
  std::string again;
  for (size_t i = 0; i < maps.size(); ++i) {
    const MapEntry& m = maps[i];
    // An entry whose end is before its start is skipped (the brief for this harness asked for
    // start < end; proc_maps.cpp accepts an empty range, which the kernel never writes).
    KVMPROF_FUZZ_PROMISE(m.start <= m.end);
    KVMPROF_FUZZ_PROMISE(m.perms.size() == 4 && m.perms.find(' ') == std::string::npos);
    KVMPROF_FUZZ_PROMISE(m.path.find('\n') == std::string::npos);
    KVMPROF_FUZZ_PROMISE(m.path.empty() || m.path.front() != ' ');  // the padding is not kept
    KVMPROF_FUZZ_PROMISE(!m.deleted || !m.path.empty());
    if (i > 0 && maps[i - 1].end > m.start) sorted = false;
    again += maps_line(m);
  }
  // What parse_maps returns, written back as maps lines, parses to the same entries.
  std::vector<MapEntry> reparsed = parse_maps(again);
  KVMPROF_FUZZ_PROMISE(reparsed.size() == maps.size());
  for (size_t i = 0; i < maps.size(); ++i) KVMPROF_FUZZ_PROMISE(same_entry(maps[i], reparsed[i]));

  for (const MapEntry& m : maps) {
    // In the kernel's order (sorted, no overlap), an executable entry is found over its range.
    const MapEntry* expected =
        sorted && m.start < m.end && m.perms.find('x') != std::string::npos ? &m : nullptr;
    fuzz_maps_lookup(maps, m.start, expected);
    fuzz_maps_lookup(maps, m.end - 1, expected);
    fuzz_maps_lookup(maps, m.start - 1);
    fuzz_maps_lookup(maps, m.end);
  }
  fuzz_maps_lookup(maps, fuzz_word(text, size >= 8 ? size - 8 : 0));
}

}  // namespace kvmprof::testing
