#pragma once
// One fuzz input = the text of a /proc/kallsyms (the host's, or an operator-supplied copy of a
// guest's). fuzz_kallsyms_input parses it with Kallsyms::parse, then looks up the address at the
// start of every line (and its neighbours, and the input's last 8 bytes as an address) with
// find(), checking the promises of kallsyms.h on every symbol found. Used by kallsyms_fuzz.cpp;
// a unit test can replay tests/fuzz/corpus/kallsyms/ through it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

#include "agent/symbols/kallsyms.h"
#include "tests/fuzz/fuzz_promise.h"

namespace kvmprof::testing {

// The hex number at the start of each line (after blanks), as Kallsyms might read it.
inline std::vector<uint64_t> kallsyms_line_addresses(std::string_view text) {
  std::vector<uint64_t> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = std::min(text.find('\n', pos), text.size());
    size_t i = pos;
    while (i < eol && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r')) ++i;
    uint64_t addr = 0;
    int digits = 0;
    for (; i < eol && digits < 16; ++i, ++digits) {
      char c = text[i];
      int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                            : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (v < 0) break;
      addr = addr << 4 | static_cast<uint64_t>(v);
    }
    if (digits > 0) out.push_back(addr);
    pos = eol + 1;
  }
  return out;
}

inline bool kallsyms_blank_free(std::string_view s) {
  return s.find_first_of(" \t\r\n") == std::string_view::npos;
}

// `starts`: every line's address, sorted.
inline void fuzz_kallsyms_lookup(const Kallsyms& k, const std::vector<uint64_t>& starts,
                                 uint64_t addr) {
  const KernelSymbol* s = k.find(addr);
  if (s == nullptr) return;
  KVMPROF_FUZZ_PROMISE(!k.addresses_hidden());
  // find() returns the symbol whose [addr, end) holds the address.
  KVMPROF_FUZZ_PROMISE(s->addr <= addr && addr < s->end);
  // Ranges never overlap: the whole range, and only it, finds the same symbol.
  KVMPROF_FUZZ_PROMISE(k.find(s->addr) == s);
  KVMPROF_FUZZ_PROMISE(k.find(s->end - 1) == s);
  KVMPROF_FUZZ_PROMISE(s->addr == 0 || k.find(s->addr - 1) != s);
  KVMPROF_FUZZ_PROMISE(s->end == std::numeric_limits<uint64_t>::max() || k.find(s->end) != s);
  // A symbol ends where a line's symbol starts, or (the last of a run) at most a page further.
  KVMPROF_FUZZ_PROMISE(s->end - s->addr <= 4096 ||
                       std::binary_search(starts.begin(), starts.end(), s->end));
  // A name (and module) as the kernel writes it: one field, within KSYM_NAME_LEN.
  KVMPROF_FUZZ_PROMISE(!s->name.empty() && s->name.size() <= 512 && kallsyms_blank_free(s->name));
  KVMPROF_FUZZ_PROMISE(s->module.size() <= 512 && kallsyms_blank_free(s->module));
  // The end-of-text markers cover nothing.
  KVMPROF_FUZZ_PROMISE(!(s->module.empty() && (s->name == "_etext" || s->name == "_einittext")));
}

inline void fuzz_kallsyms_input(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = Kallsyms::parse(text);
  if (!parsed.ok()) {
    KVMPROF_FUZZ_PROMISE(!parsed.error().message().empty());
    return;
  }
  const Kallsyms& k = *parsed;
  const size_t lines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
  KVMPROF_FUZZ_PROMISE(k.skipped_lines() < lines);  // at least one line was a text symbol
  KVMPROF_FUZZ_PROMISE(k.addresses_hidden() ? k.size() == 0 : k.size() > 0);
  KVMPROF_FUZZ_PROMISE(k.size() < lines + 1);
  KVMPROF_FUZZ_PROMISE(k.bytes() >= k.size() * sizeof(KernelSymbol));
  std::vector<uint64_t> starts = kallsyms_line_addresses(text);
  std::sort(starts.begin(), starts.end());
  for (uint64_t addr : starts) {
    for (uint64_t probe : {addr, addr - 1, addr + 1, addr + 4095, addr + 4096}) {
      fuzz_kallsyms_lookup(k, starts, probe);
    }
  }
  fuzz_kallsyms_lookup(k, starts, fuzz_word(text, size >= 8 ? size - 8 : 0));
  fuzz_kallsyms_lookup(k, starts, 0);
  fuzz_kallsyms_lookup(k, starts, std::numeric_limits<uint64_t>::max());
}

}  // namespace kvmprof::testing
