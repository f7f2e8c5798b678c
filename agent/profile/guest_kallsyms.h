#pragma once
// GuestKallsyms: the operators' copies of guests' /proc/kallsyms (a policy's
// sampling.guest_kallsyms), loaded when a profile first needs one and again when the file
// changes. A guest's kernel addresses move with every boot (KASLR), so a copy names a guest's
// frames only while it matches: the profile checks that the sampled addresses fall inside its
// symbols before it trusts it (see match()).
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/symbols/kallsyms.h"

namespace kvmprof {

// At most this much text per file: a distribution kernel's kallsyms is 10-15 MB.
inline constexpr size_t kMaxGuestKallsymsBytes = size_t{64} << 20;

struct GuestSymbols {
  std::shared_ptr<const Kallsyms> symbols;  // null when the file could not be used
  std::string error;                        // why not
};

// How many of a VM's sampled guest kernel addresses a copy covers: it is trusted when at least
// 90% are (a copy from another boot or kernel covers few, or names them wrongly).
struct GuestMatch {
  size_t covered = 0, total = 0;
  bool trusted() const { return total > 0 && covered * 10 >= total * 9; }
};
GuestMatch match(const Kallsyms& symbols, const std::vector<uint64_t>& guest_kernel_ips);

class GuestKallsyms {
 public:
  GuestSymbols get(const std::string& path);  // thread-safe
  size_t bytes() const;

 private:
  struct Loaded {
    int64_t mtime_ns = 0;
    off_t size = 0;
    GuestSymbols symbols;
  };
  static constexpr size_t kMaxFiles = 16;
  mutable std::mutex mu_;
  std::map<std::string, Loaded> files_;
};

}  // namespace kvmprof
