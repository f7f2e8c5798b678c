#pragma once
// Parser for /proc/PID/maps: which file, at which offset, a user-space address comes from, so
// a sampled IP can be turned into a file offset and then into a symbol of that file.
// It takes text, never paths, so tests feed it strings.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kvmprof {

struct MapEntry {
  uint64_t start = 0;
  uint64_t end = 0;     // exclusive
  uint64_t offset = 0;  // file offset mapped at start
  std::string perms;    // "r-xp"
  uint64_t inode = 0;
  std::string path;      // without " (deleted)"; "" for anonymous memory, "[vdso]", "[heap]", ...
  bool deleted = false;  // the file was unlinked (or replaced) after it was mapped
};

// Every line that parses, in the kernel's order (sorted by start); other lines are skipped.
// A path keeps its spaces.
std::vector<MapEntry> parse_maps(std::string_view text);

// The executable ('x') mapping of `maps` (sorted by start) that holds addr, else nullptr.
const MapEntry* find_map(const std::vector<MapEntry>& maps, uint64_t addr);

}  // namespace kvmprof
