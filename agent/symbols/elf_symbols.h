#pragma once
// ElfSymbols: the function symbols, build-id and loadable segments of one ELF file (an
// executable or a shared library such as QEMU and its libraries), read once through libelf
// and kept in memory so user-space frames can be named without the file staying open.
//
// Debian's QEMU is stripped of .symtab but keeps about 9,400 functions in .dynsym, so .dynsym
// is used when .symtab is missing. The build-id identifies the file for a later
// symbolization elsewhere (debuginfod) and lets copies of one file share one cache entry.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/system/result.h"

namespace kvmprof {

struct ElfSymbol {
  uint64_t addr = 0;  // st_value: a virtual address of the file, before any load bias
  uint64_t size = 0;  // st_size; for a symbol without one, up to the next symbol
  std::string name;   // as in the file (C++ names mangled: see demangle())
};

class ElfSymbols {
 public:
  // Reads the ELF file open at fd (not taken over; read through pread, never mmap, so a file
  // truncated under us cannot fault). `what` names the file in errors. Error for a file that is
  // not ELF or is cut short. A symbol table of over 2 million entries, or 256 MiB of names, is
  // not read (the next table is tried), which bounds what one file can cost.
  static Result<std::shared_ptr<const ElfSymbols>> load_fd(int fd, const std::string& what);
  static Result<std::shared_ptr<const ElfSymbols>> load(const std::string& path);

  const std::string& build_id() const { return build_id_; }  // lower-case hex, "" when none
  std::string_view table() const { return table_; }          // "symtab", "dynsym" or "none"
  // The virtual address of a file offset, through the PT_LOAD segment holding it.
  std::optional<uint64_t> vaddr_of_offset(uint64_t file_offset) const;
  // The defined function (STT_FUNC or STT_GNU_IFUNC) holding vaddr, else nullptr.
  const ElfSymbol* find(uint64_t vaddr) const;
  size_t bytes() const;  // approximate memory held

  struct Segment {  // a PT_LOAD program header
    uint64_t offset = 0;
    uint64_t filesz = 0;
    uint64_t vaddr = 0;
    uint64_t memsz = 0;
  };

 private:
  std::string build_id_;
  std::string_view table_ = "none";
  std::vector<Segment> segments_;
  std::vector<ElfSymbol> symbols_;  // sorted by addr, one per address
};

// A C++ name ("_ZN4kvm3runEv") demangled ("kvm::run()"); any other name, or one that does not
// demangle, as it is.
std::string demangle(const std::string& name);

}  // namespace kvmprof
