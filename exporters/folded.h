#pragma once
// The stacks of a Profile as people read them in flame graphs: the VM, the thread, then the
// code from root to leaf; and Brendan Gregg's folded format of them ("a;b;c COUNT"), which
// flamegraph.pl, speedscope and inferno take. Pure: it reads the profile only.
#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "exporters/profile.h"

namespace kvmprof {

struct StackFrame {
  std::string name;
  std::optional<FrameKind> kind;  // none for the synthetic frames: the VM and the thread

  auto operator<=>(const StackFrame&) const = default;
};

// Root first: the `domain` label when there is one, the thread ("vcpu N" from the numeric
// `vcpu` label, else the `thread` label), then the locations. A location is named by its
// function, else "[" + the basename of its mapping's file + "]", else "[unknown]"; a sample
// with none of these has the one frame "[unknown]". Names are as they came (a VM's name, an ELF
// symbol): each renderer makes them safe for its format. Indexes out of range throw.
using Stack = std::vector<StackFrame>;

// Samples (ProfileSample::count) per distinct stack; samples without any count are left out.
std::map<Stack, int64_t> stack_counts(const Profile& profile);

// One line per distinct stack, "root;...;leaf COUNT\n", sorted. Host kernel frames end in
// "_[k]" (flamegraph.pl colors them as kernel), guest frames in "_[g]". ';' in a name becomes
// ':' and control characters '?', so no name can add a frame or a line.
std::string folded(const Profile& profile);

}  // namespace kvmprof
