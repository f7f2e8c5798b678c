#pragma once
// Builds a symbolized Profile (exporters/profile.h) from the samples of a window: host kernel
// frames named through kallsyms, QEMU's frames through its mappings and ELF symbols (a frame
// that cannot be named stays an address in a mapping with its build-id), guest frames as guest
// addresses under [guest_kernel] / [guest_user], named by the policy's guest_kallsyms when that
// copy matches. Identical (VM, thread, mode, stack) samples become one pprof sample with a count.
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "agent/profile/guest_kallsyms.h"
#include "agent/profile/profile_store.h"
#include "agent/symbols/symbolizer.h"
#include "exporters/profile.h"

namespace kvmprof {

struct ProfileScope {
  int64_t seconds = 30;        // the window asked for
  int64_t end_unix_ns = 0;     // now, wall clock
  uint64_t end_mono_ns = 0;    // now, CLOCK_MONOTONIC (the samples' clock)
  std::set<SampleMode> modes;  // empty: every mode
  std::map<std::string, std::string> names;  // uuid -> libvirt name, for the labels
};

Profile build_profile(const ProfileWindow& window, const ProfileScope& scope, Symbolizer& symbolizer,
                      GuestKallsyms& guests);

}  // namespace kvmprof
