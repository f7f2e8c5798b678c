#pragma once
// GuestKallsyms: the operators' copies of guests' /proc/kallsyms (a policy's
// sampling.guest_kallsyms), loaded when a profile first needs one and again when the file
// changes, and kept least recently used first out within profiles.symbol_cache. A guest's
// kernel addresses move with every boot (KASLR), so a copy names a guest's frames only while
// it matches: the profile checks that the sampled addresses fall inside its symbols before it
// trusts it (see match()).
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
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
  void set_max_bytes(size_t bytes);  // the one used last stays, even alone over the bound
  // True the first time this (file as it is now, VM) does not match: its warning is logged once.
  bool first_mismatch(const std::string& path, const std::string& vm);

 private:
  struct Loaded {
    int64_t mtime_ns = 0;
    off_t size = 0;
    uint64_t used = 0;  // when it was used last, in get() calls
    GuestSymbols symbols;
  };
  void evict_locked(const std::string& keep);

  mutable std::mutex mu_;
  size_t max_bytes_ = size_t{64} << 20;
  uint64_t clock_ = 0;
  std::map<std::string, Loaded> files_;
  std::set<std::string> warned_;  // "mtime size path vm"
};

}  // namespace kvmprof
