#pragma once
// Profile: a symbolized CPU profile of one or all VMs, as the renderers take it (pprof, folded
// stacks, the flame graph SVG). Built by the agent's profile builder from the sampler's window;
// pure data, so the renderers are pure functions tested on crafted profiles.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kvmprof {

// Where a frame runs, for the flame graph's colors and the folded stacks' kernel suffix.
enum class FrameKind { kHostKernel, kHostUser, kGuest };

struct ProfileMapping {
  uint64_t start = 0, limit = 0;  // [start, limit) in the address space of its frames
  uint64_t offset = 0;            // the file offset mapped at `start`
  // "/usr/bin/qemu-system-x86_64", "[kernel.kallsyms]", "[guest_kernel]", "[guest_user]",
  // "/usr/lib/libfoo.so (deleted)".
  std::string file;
  std::string build_id;  // lower-case hex of the GNU build-id note; empty when unknown
  bool has_functions = false;  // some of its frames are named
};

struct ProfileLocation {
  uint64_t address = 0;  // the runtime address (host) or the guest virtual address
  size_t mapping = 0;    // 1-based index into Profile::mappings; 0 = no mapping
  FrameKind kind = FrameKind::kHostUser;
  std::string function;  // empty when the frame could not be named (pprof shows the address)
  std::string filename;  // the function's file: the ELF path, "[kernel.kallsyms]" or a "[module]"
};

struct ProfileSample {
  std::vector<size_t> locations;  // 1-based indexes into Profile::locations, leaf first
  int64_t count = 0;              // samples
  int64_t nanos = 0;              // CPU time they stand for
  std::vector<std::pair<std::string, std::string>> labels;  // e.g. domain, uuid, thread, execution_mode
  std::vector<std::pair<std::string, int64_t>> num_labels;  // e.g. vcpu
};

struct Profile {
  int64_t time_nanos = 0;      // start of the window, wall clock
  int64_t duration_nanos = 0;  // length of the window
  int64_t period_nanos = 0;    // the sampling period (one sample stands for this much CPU)
  std::vector<ProfileMapping> mappings;
  std::vector<ProfileLocation> locations;
  std::vector<ProfileSample> samples;
  std::vector<std::string> comments;  // what the reader should know (e.g. a guest kallsyms that did not match)
  // The value pprof shows first: "" for the last (cpu nanoseconds); "samples" when some
  // samples' CPU time is unknown (an event sampled every N events).
  std::string default_sample_type;
};

// The label a sample's string labels carry under `key`, or "" when it has none.
inline const std::string& label(const ProfileSample& s, const std::string& key) {
  static const std::string none;
  for (const auto& [k, v] : s.labels)
    if (k == key) return v;
  return none;
}

}  // namespace kvmprof
