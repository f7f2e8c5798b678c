#pragma once
// Symbolizer: names the host frames of per-VM CPU profiles. Kernel addresses go through
// /proc/kallsyms, read again only when the module list changes. User addresses go through the
// process's /proc/PID/maps to the ELF file behind the mapping, opened through /proc/PID/root so
// a process in another mount namespace (a container) gets its own file, and through
// /proc/PID/map_files for a file deleted since it was mapped (QEMU upgraded under a running
// VM: the path now holds the new binary, never the one running).
//
// Loaded files are cached by build-id, so copies of one file share an entry, in an LRU bounded
// by file count and bytes. Thread-safe: HTTP threads build profiles at the same time. One
// mutex guards the caches; files are opened and parsed outside it, so a slow file does not
// stall the other threads.
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/symbols/elf_symbols.h"
#include "agent/symbols/kallsyms.h"
#include "agent/symbols/proc_maps.h"
#include "agent/system/host_root.h"

namespace kvmprof {

// The file used last always stays cached, even alone over a bound, so that a file bigger than
// max_bytes is not parsed again on every call.
struct SymbolizerLimits {
  size_t max_files = 64;
  size_t max_bytes = 64u << 20;  // ELF symbols and kallsyms together
};

struct SymbolCacheStats {
  size_t files = 0;     // ELF files cached
  size_t bytes = 0;     // ELF files and kallsyms
  uint64_t hits = 0;    // user() answered from the cache
  uint64_t misses = 0;  // user() had to parse a file
  uint64_t evictions = 0;
  size_t kernel_symbols = 0;
};

struct KernelName {
  std::string function;
  std::string module;  // "" = vmlinux
};

// Each "" when unknown: a frame with a build-id and no function can be named later elsewhere.
struct UserName {
  std::string build_id;
  std::string function;  // C++ names demangled
};

class Symbolizer {
 public:
  explicit Symbolizer(HostRoot root, SymbolizerLimits limits = {});

  // Once per profile: reads /proc/modules, and /proc/kallsyms again when the module list
  // changed or kallsyms was never loaded. A failed read keeps the symbols loaded before.
  void refresh();
  std::optional<KernelName> kernel(uint64_t addr) const;
  // Kallsyms showed every address as 0 (kptr_restrict, or no privilege): nothing is named.
  bool kernel_addresses_hidden() const;

  // /proc/PID/maps read now; empty when the process is gone.
  std::vector<MapEntry> maps(pid_t pid) const;
  // addr is a runtime address inside map, one of maps(pid).
  UserName user(pid_t pid, const MapEntry& map, uint64_t addr);

  SymbolCacheStats stats() const;
  void set_limits(SymbolizerLimits limits);  // evicts down to the new bounds at once

 private:
  // An opened file: the same identity always holds the same bytes.
  struct FileId {
    dev_t dev = 0;
    ino_t ino = 0;
    int64_t mtime_ns = 0;
    auto operator<=>(const FileId&) const = default;
  };
  struct Entry {
    std::shared_ptr<const ElfSymbols> symbols;
    std::list<std::string>::iterator lru;
  };

  Result<Fd> open_mapped(pid_t pid, const MapEntry& map) const;
  std::shared_ptr<const ElfSymbols> symbols_for(pid_t pid, const MapEntry& map);
  void remember_locked(const FileId& file, std::string key);
  std::shared_ptr<const ElfSymbols> touch_locked(const std::string& key);
  std::shared_ptr<const ElfSymbols> insert_locked(const std::string& key,
                                                  std::shared_ptr<const ElfSymbols> symbols);
  void evict_locked();
  size_t bytes_locked() const;

  const HostRoot root_;
  mutable std::mutex mu_;
  SymbolizerLimits limits_;
  std::shared_ptr<const Kallsyms> kallsyms_;
  std::string modules_;       // the module list kallsyms_ was read with
  std::string kernel_error_;  // the last kallsyms failure logged, so it is logged once
  // Opened file -> cache key; "" for a file that is not a readable ELF file, which cannot change
  // under the same identity. Cleared when it grows too big.
  std::map<FileId, std::string> file_keys_;
  std::list<std::string> lru_;  // cache keys, most recently used first
  std::unordered_map<std::string, Entry> entries_;
  size_t file_bytes_ = 0;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
  uint64_t evictions_ = 0;
};

}  // namespace kvmprof
