#pragma once
// One fuzz input = the bytes of a file the symbolizer opens as ELF (QEMU, one of its libraries,
// or whatever a hostile process maps). fuzz_elf_input writes it to a memfd, loads it with
// ElfSymbols::load_fd, then reads the build-id and table name, maps a few file offsets to
// addresses and looks up addresses taken from the input itself (every 4- and 8-byte word at a
// 4-byte boundary, little- and big-endian: the symbol values of a small file are among them), checking
// elf_symbols.h's promises and demangling each name found as the symbolizer does. Used by
// elf_fuzz.cpp; a unit test can replay tests/fuzz/corpus/elf/ through it.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/symbols/elf_symbols.h"
#include "tests/fuzz/fuzz_promise.h"

namespace kvmprof::testing {

// One memfd for the whole run, emptied and rewritten for each input.
inline int fuzz_elf_memfd() {
  static const int fd = memfd_create("kvmprof-elf-fuzz", MFD_CLOEXEC);
  return fd;
}

inline void fuzz_elf_lookup(const ElfSymbols& elf, uint64_t vaddr) {
  const ElfSymbol* s = elf.find(vaddr);
  if (s == nullptr) return;
  KVMPROF_FUZZ_PROMISE(elf.table() != "none");
  // find() returns the function whose [addr, addr + size) holds the address.
  KVMPROF_FUZZ_PROMISE(s->addr <= vaddr && vaddr - s->addr < s->size);
  KVMPROF_FUZZ_PROMISE(elf.find(s->addr) == s);  // one symbol per address
  KVMPROF_FUZZ_PROMISE(!s->name.empty() && s->name.size() <= 4096);
  KVMPROF_FUZZ_PROMISE(s->name.find('\0') == std::string::npos);
  KVMPROF_FUZZ_PROMISE(!demangle(s->name).empty());
}

inline void fuzz_elf_input(const uint8_t* data, size_t size) {
  const int fd = fuzz_elf_memfd();
  KVMPROF_FUZZ_PROMISE(fd >= 0);
  KVMPROF_FUZZ_PROMISE(::ftruncate(fd, 0) == 0);
  for (size_t done = 0; done < size;) {
    ssize_t n = ::pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    KVMPROF_FUZZ_PROMISE(n > 0);
    done += static_cast<size_t>(n);
  }
  auto loaded = ElfSymbols::load_fd(fd, "fuzz-input");
  if (!loaded.ok()) {
    KVMPROF_FUZZ_PROMISE(!loaded.error().message().empty());
    return;
  }
  KVMPROF_FUZZ_PROMISE(*loaded != nullptr);
  const ElfSymbols& elf = **loaded;

  const std::string& id = elf.build_id();  // lower-case hex
  KVMPROF_FUZZ_PROMISE(id.size() % 2 == 0);
  KVMPROF_FUZZ_PROMISE(std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  }));
  KVMPROF_FUZZ_PROMISE(elf.table() == "symtab" || elf.table() == "dynsym" ||
                       elf.table() == "none");
  KVMPROF_FUZZ_PROMISE(elf.bytes() >= sizeof(ElfSymbols));

  std::string_view input(reinterpret_cast<const char*>(data), size);
  for (uint64_t offset : {uint64_t{0}, uint64_t{0x40}, uint64_t{0x1000}, uint64_t{size / 2},
                          uint64_t{size ? size - 1 : 0}, uint64_t{size}, ~uint64_t{0}}) {
    if (auto vaddr = elf.vaddr_of_offset(offset)) {
      fuzz_elf_lookup(elf, *vaddr);
      if (auto next = elf.vaddr_of_offset(offset + 1)) fuzz_elf_lookup(elf, *next);
    }
  }
  // Words of the input as addresses: symbol values, segment addresses, and junk.
  const size_t words = std::min<size_t>(size / 4, 16384);
  for (size_t i = 0; i < words; ++i) {
    uint64_t le64 = fuzz_word(input, i * 4);
    uint64_t le32 = le64 & 0xffffffffu;
    uint64_t be64 = __builtin_bswap64(le64);
    uint64_t be32 = be64 >> 32;
    for (uint64_t probe : {le64, le32, be64, be32}) {
      fuzz_elf_lookup(elf, probe);
      fuzz_elf_lookup(elf, probe + 1);
    }
  }
}

}  // namespace kvmprof::testing
