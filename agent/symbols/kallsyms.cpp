#include "agent/symbols/kallsyms.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <optional>

namespace kvmprof {
namespace {

// KSYM_NAME_LEN is 512 since Linux 6.1; a longer name or module is not kernel output.
constexpr size_t kMaxName = 512;
// A real kernel has a few hundred thousand text symbols; this bounds a hostile guest file.
constexpr size_t kMaxSymbols = 2'000'000;
// The last symbol of a run has no next symbol to end it: a page is a guess that names the
// function without naming whatever follows it far away.
constexpr uint64_t kLastSymbolSize = 4096;

struct Line {
  uint64_t addr = 0;
  char type = 0;
  std::string_view name;
  std::string_view module;
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

bool is_text(char type) { return type == 't' || type == 'T' || type == 'w' || type == 'W'; }

// "ffffffff81000000 T _stext" or "ffffffffc0a01000 t vmx_vcpu_run\t[kvm_intel]".
std::optional<Line> parse_line(std::string_view line) {
  std::array<std::string_view, 4> fields;
  size_t count = 0;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    if (i == line.size()) break;
    if (count == fields.size()) return std::nullopt;
    size_t j = i;
    while (j < line.size() && !is_space(line[j])) ++j;
    fields[count++] = line.substr(i, j - i);
    i = j;
  }
  if (count < 3 || fields[0].size() > 16 || fields[1].size() != 1 || fields[2].size() > kMaxName) {
    return std::nullopt;
  }
  Line out;
  const char* end = fields[0].data() + fields[0].size();
  auto [p, ec] = std::from_chars(fields[0].data(), end, out.addr, 16);
  if (ec != std::errc() || p != end) return std::nullopt;
  out.type = fields[1][0];
  out.name = fields[2];
  if (count == 4) {
    std::string_view module = fields[3];
    if (module.size() < 3 || module.size() > kMaxName + 2 || module.front() != '[' ||
        module.back() != ']') {
      return std::nullopt;
    }
    out.module = module.substr(1, module.size() - 2);
  }
  return out;
}

bool is_end_marker(const KernelSymbol& s) {
  return s.module.empty() && (s.name == "_etext" || s.name == "_einittext");
}

uint64_t plus_last_size(uint64_t addr) {
  return addr > std::numeric_limits<uint64_t>::max() - kLastSymbolSize
             ? std::numeric_limits<uint64_t>::max()
             : addr + kLastSymbolSize;
}

// Sorted, one symbol per address: ends come from the next symbol (see kallsyms.h).
void set_ends(std::vector<KernelSymbol>& symbols) {
  for (size_t i = 0; i < symbols.size(); ++i) {
    KernelSymbol& s = symbols[i];
    const KernelSymbol* next = i + 1 < symbols.size() ? &symbols[i + 1] : nullptr;
    if (is_end_marker(s)) {
      s.end = s.addr;
    } else if (next && next->module == s.module) {
      s.end = next->addr;
    } else {
      s.end = next ? std::min(plus_last_size(s.addr), next->addr) : plus_last_size(s.addr);
    }
  }
}

struct Candidate {
  KernelSymbol symbol;
  bool local = false;  // lower-case type: loses to a global symbol at the same address
};

std::vector<KernelSymbol> sorted_unique(std::vector<Candidate> found) {
  std::stable_sort(found.begin(), found.end(), [](const Candidate& a, const Candidate& b) {
    if (a.symbol.addr != b.symbol.addr) return a.symbol.addr < b.symbol.addr;
    return !a.local && b.local;
  });
  std::vector<KernelSymbol> out;
  out.reserve(found.size());
  for (Candidate& c : found) {
    if (out.empty() || out.back().addr != c.symbol.addr) out.push_back(std::move(c.symbol));
  }
  return out;
}

size_t heap_bytes(const std::string& s) {
  return s.capacity() > std::string().capacity() ? s.capacity() + 1 : 0;
}

}  // namespace

Result<Kallsyms> Kallsyms::parse(std::string_view text) {
  Kallsyms out;
  std::vector<Candidate> found;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = std::min(text.find('\n', pos), text.size());
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (std::all_of(line.begin(), line.end(), is_space)) continue;
    std::optional<Line> parsed = parse_line(line);
    if (!parsed || found.size() >= kMaxSymbols) {
      ++out.skipped_;
      continue;
    }
    if (!is_text(parsed->type)) continue;
    KernelSymbol symbol{parsed->addr, 0, std::string(parsed->name), std::string(parsed->module)};
    found.push_back({std::move(symbol), parsed->type == 't' || parsed->type == 'w'});
  }
  if (found.empty()) {
    return Error{
        0, "kallsyms: no text symbol (" + std::to_string(out.skipped_) + " lines did not parse)"};
  }
  out.hidden_ = std::all_of(found.begin(), found.end(),
                            [](const Candidate& c) { return c.symbol.addr == 0; });
  if (!out.hidden_) {
    out.symbols_ = sorted_unique(std::move(found));
    set_ends(out.symbols_);
  }
  return out;
}

const KernelSymbol* Kallsyms::find(uint64_t addr) const {
  auto it = std::upper_bound(symbols_.begin(), symbols_.end(), addr,
                             [](uint64_t a, const KernelSymbol& s) { return a < s.addr; });
  if (it == symbols_.begin()) return nullptr;
  --it;
  return addr < it->end ? &*it : nullptr;
}

size_t Kallsyms::bytes() const {
  size_t total = sizeof(*this) + symbols_.capacity() * sizeof(KernelSymbol);
  for (const KernelSymbol& s : symbols_) total += heap_bytes(s.name) + heap_bytes(s.module);
  return total;
}

}  // namespace kvmprof
