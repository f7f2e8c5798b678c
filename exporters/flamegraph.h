#pragma once
// The classic flame graph of a Profile, as Brendan Gregg's flamegraph.pl draws it: one SVG, the
// root at the bottom, each frame as wide as its samples, colored by where it ran (guest, host
// kernel, host user). Self-contained so that a browser shows it from the agent alone: no script,
// nothing fetched. Pure: it reads the profile only.
#include <cstdint>
#include <string>

#include "exporters/profile.h"

namespace kvmprof {

struct FlameGraphOptions {
  std::string title;     // e.g. "kvmprof: VM 'web-1', last 30 s, 2,970 samples"
  std::string subtitle;  // a second line under the title; none when empty
  int width = 1200;      // pixels
};

// Always well-formed XML, whatever bytes the names hold (VM names and ELF symbols are not
// trusted), and the same bytes for the same profile. Frames narrower than 0.1 px are left out
// (flamegraph.pl's minwidth), which bounds the size of huge profiles.
std::string flamegraph_svg(const Profile& profile, const FlameGraphOptions& options);

// 1234567 -> "1,234,567", whatever the process locale: the counts in titles and hover texts.
std::string with_commas(int64_t n);

}  // namespace kvmprof
