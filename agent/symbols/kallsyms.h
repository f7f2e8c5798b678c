#pragma once
// Kallsyms: the kernel's text symbols from /proc/kallsyms, to name the kernel frames of a
// profile. It also reads an operator-supplied copy of a guest's /proc/kallsyms, so the parser
// takes any text (junk, huge lines, no final newline) and never trusts it.
//
// Each symbol covers [addr, end): end is the next symbol's address when that symbol is in the
// same module (vmlinux or one module); the last symbol of a run ends 4096 bytes further, but
// never past the next symbol, so ranges never overlap. Non-text symbols are not kept and end
// nothing. `_etext` and `_einittext` mark where vmlinux text ends: they end the symbol before
// them and cover nothing themselves, so an address past the kernel's text is not named.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agent/system/result.h"

namespace kvmprof {

struct KernelSymbol {
  uint64_t addr = 0;
  uint64_t end = 0;  // exclusive
  std::string name;
  std::string module;  // "" = vmlinux
};

class Kallsyms {
 public:
  // Keeps text symbols (t T w W, in vmlinux and in modules), sorted by address. Of several
  // symbols at one address one name is kept: a global (upper-case type) before a local one,
  // then the first in the text. Lines that do not parse (or past 2 million symbols, or with a
  // name over 512 bytes) are skipped and counted. Error when no line is a text symbol.
  static Result<Kallsyms> parse(std::string_view text);

  // The symbol whose [addr, end) holds addr, else nullptr.
  const KernelSymbol* find(uint64_t addr) const;
  // Every address was 0 (kptr_restrict, or read without privilege): nothing can be named, and
  // no symbol is kept.
  bool addresses_hidden() const { return hidden_; }
  size_t size() const { return symbols_.size(); }
  size_t bytes() const;  // approximate memory held
  size_t skipped_lines() const { return skipped_; }

 private:
  std::vector<KernelSymbol> symbols_;
  bool hidden_ = false;
  size_t skipped_ = 0;
};

}  // namespace kvmprof
