#include "agent/symbols/elf_symbols.h"

#include <cxxabi.h>
#include <elfutils/libdwelf.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "agent/system/fd.h"

namespace kvmprof {
namespace {

// Bounds on what one file may cost while loading: a table over either limit is not read and
// the next one (.dynsym after .symtab) is tried. Real binaries stay far below: QEMU's .dynsym
// has about 10,000 functions, a large C++ program's .symtab a few hundred thousand.
constexpr size_t kMaxSymbols = 2'000'000;
constexpr uint64_t kMaxStringBytes = 256u << 20;
// Longer names are cut: one huge string shared by many symbols must not be copied each time.
constexpr size_t kMaxName = 4096;

using Segment = ElfSymbols::Segment;
using ElfHandle = std::unique_ptr<Elf, decltype(&elf_end)>;

Error elf_error(const std::string& what, const std::string& doing) {
  return Error{0, what + ": " + doing + ": " + elf_errmsg(-1)};
}

std::string read_build_id(Elf* elf) {
  const void* id = nullptr;
  ssize_t size = dwelf_elf_gnu_build_id(elf, &id);
  if (size <= 0 || id == nullptr) return "";
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (ssize_t i = 0; i < size; ++i) {
    auto byte = static_cast<const unsigned char*>(id)[i];
    hex += kHex[byte >> 4];
    hex += kHex[byte & 0xf];
  }
  return hex;
}

// libelf quietly reads fewer headers from a truncated file; a file cut before the end of its
// header tables is an error instead, not a file without symbols.
bool headers_fit(const GElf_Ehdr& ehdr, uint64_t file_size) {
  auto fits = [&](uint64_t offset, uint64_t count, uint64_t entry_size) {
    return offset <= file_size && count * entry_size <= file_size - offset;
  };
  // With 65,280 sections or more, e_shnum is 0 and the count is in the first section header.
  uint64_t sections = ehdr.e_shnum == 0 && ehdr.e_shoff != 0 ? 1 : ehdr.e_shnum;
  return fits(ehdr.e_phoff, ehdr.e_phnum, ehdr.e_phentsize) &&
         fits(ehdr.e_shoff, sections, ehdr.e_shentsize);
}

Result<std::vector<Segment>> read_segments(Elf* elf, const std::string& what) {
  size_t count = 0;
  if (elf_getphdrnum(elf, &count) != 0) return elf_error(what, "program headers");
  std::vector<Segment> segments;
  for (size_t i = 0; i < count; ++i) {
    GElf_Phdr phdr;
    if (gelf_getphdr(elf, static_cast<int>(i), &phdr) == nullptr) {
      return elf_error(what, "program header " + std::to_string(i));
    }
    if (phdr.p_type == PT_LOAD) {
      segments.push_back({phdr.p_offset, phdr.p_filesz, phdr.p_vaddr, phdr.p_memsz});
    }
  }
  return segments;
}

// A symbol table within the bounds, with a string section to name its symbols.
bool usable(Elf* elf, const GElf_Shdr& table) {
  GElf_Shdr strings;
  size_t entry = gelf_fsize(elf, ELF_T_SYM, 1, EV_CURRENT);
  return entry != 0 && table.sh_size / entry <= kMaxSymbols &&
         gelf_getshdr(elf_getscn(elf, table.sh_link), &strings) != nullptr &&
         strings.sh_type == SHT_STRTAB && strings.sh_size <= kMaxStringBytes;
}

// .symtab when the file has a usable one, else .dynsym, else nullptr.
Elf_Scn* symbol_table(Elf* elf, GElf_Shdr& shdr, std::string_view& table) {
  Elf_Scn* dynsym = nullptr;
  GElf_Shdr dynsym_shdr{};
  for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn != nullptr; scn = elf_nextscn(elf, scn)) {
    GElf_Shdr h;
    if (gelf_getshdr(scn, &h) == nullptr) continue;
    if (h.sh_type == SHT_SYMTAB && usable(elf, h)) {
      shdr = h;
      table = "symtab";
      return scn;
    }
    if (h.sh_type == SHT_DYNSYM && dynsym == nullptr && usable(elf, h)) {
      dynsym = scn;
      dynsym_shdr = h;
    }
  }
  if (dynsym != nullptr) {
    shdr = dynsym_shdr;
    table = "dynsym";
  }
  return dynsym;
}

struct Candidate {
  ElfSymbol symbol;
  bool local = false;  // loses to a global or weak symbol at the same address
};

std::vector<Candidate> read_functions(Elf* elf, Elf_Scn* scn, const GElf_Shdr& shdr) {
  std::vector<Candidate> found;
  Elf_Data* data = elf_getdata(scn, nullptr);
  size_t entry = gelf_fsize(elf, ELF_T_SYM, 1, EV_CURRENT);
  if (data == nullptr || entry == 0) return found;
  size_t count = std::min(data->d_size / entry, kMaxSymbols);
  for (size_t i = 0; i < count; ++i) {
    GElf_Sym sym;
    if (gelf_getsym(data, static_cast<int>(i), &sym) == nullptr) break;
    int type = GELF_ST_TYPE(sym.st_info);
    if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sym.st_shndx == SHN_UNDEF) continue;
    const char* name = elf_strptr(elf, shdr.sh_link, sym.st_name);
    if (name == nullptr || *name == '\0') continue;
    ElfSymbol symbol{sym.st_value, sym.st_size, std::string(name, strnlen(name, kMaxName))};
    found.push_back({std::move(symbol), GELF_ST_BIND(sym.st_info) == STB_LOCAL});
  }
  return found;
}

uint64_t segment_end(const std::vector<Segment>& segments, uint64_t vaddr) {
  for (const Segment& s : segments) {
    if (vaddr >= s.vaddr && vaddr - s.vaddr < s.memsz) return s.vaddr + s.memsz;
  }
  return vaddr;
}

// Sorted by address, one symbol per address (global before local, then the first in the
// table); a symbol without size ends at the next one, or at the end of its segment.
std::vector<ElfSymbol> sorted_unique(std::vector<Candidate> found,
                                     const std::vector<Segment>& segments) {
  std::stable_sort(found.begin(), found.end(), [](const Candidate& a, const Candidate& b) {
    if (a.symbol.addr != b.symbol.addr) return a.symbol.addr < b.symbol.addr;
    return !a.local && b.local;
  });
  std::vector<ElfSymbol> out;
  out.reserve(found.size());
  for (Candidate& c : found) {
    if (out.empty() || out.back().addr != c.symbol.addr) out.push_back(std::move(c.symbol));
  }
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].size != 0) continue;
    uint64_t end = i + 1 < out.size() ? out[i + 1].addr : segment_end(segments, out[i].addr);
    out[i].size = end - out[i].addr;
  }
  return out;
}

size_t heap_bytes(const std::string& s) {
  return s.capacity() > std::string().capacity() ? s.capacity() + 1 : 0;
}

}  // namespace

Result<std::shared_ptr<const ElfSymbols>> ElfSymbols::load_fd(int fd, const std::string& what) {
  static const bool kInitialized = elf_version(EV_CURRENT) != EV_NONE;
  if (!kInitialized) return Error{0, what + ": libelf refused its version"};
  ElfHandle elf(elf_begin(fd, ELF_C_READ, nullptr), elf_end);
  if (!elf) return elf_error(what, "elf_begin");
  GElf_Ehdr ehdr;
  if (elf_kind(elf.get()) != ELF_K_ELF || gelf_getehdr(elf.get(), &ehdr) == nullptr) {
    return Error{0, what + ": not an ELF file"};
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) return system_error("stat " + what);
  if (!headers_fit(ehdr, static_cast<uint64_t>(st.st_size))) {
    return Error{0, what + ": truncated ELF file"};
  }
  auto segments = read_segments(elf.get(), what);
  if (!segments) return segments.error();
  auto out = std::make_shared<ElfSymbols>();
  out->build_id_ = read_build_id(elf.get());
  out->segments_ = std::move(*segments);
  GElf_Shdr shdr{};
  if (Elf_Scn* scn = symbol_table(elf.get(), shdr, out->table_)) {
    out->symbols_ = sorted_unique(read_functions(elf.get(), scn, shdr), out->segments_);
  }
  return std::shared_ptr<const ElfSymbols>(std::move(out));
}

Result<std::shared_ptr<const ElfSymbols>> ElfSymbols::load(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return system_error("open " + path);
  return load_fd(fd.get(), path);
}

std::optional<uint64_t> ElfSymbols::vaddr_of_offset(uint64_t file_offset) const {
  for (const Segment& s : segments_) {
    if (file_offset >= s.offset && file_offset - s.offset < s.filesz) {
      return s.vaddr + (file_offset - s.offset);
    }
  }
  return std::nullopt;
}

const ElfSymbol* ElfSymbols::find(uint64_t vaddr) const {
  auto it = std::upper_bound(symbols_.begin(), symbols_.end(), vaddr,
                             [](uint64_t a, const ElfSymbol& s) { return a < s.addr; });
  if (it == symbols_.begin()) return nullptr;
  --it;
  return vaddr - it->addr < it->size ? &*it : nullptr;
}

size_t ElfSymbols::bytes() const {
  size_t total = sizeof(*this) + heap_bytes(build_id_) + segments_.capacity() * sizeof(Segment) +
                 symbols_.capacity() * sizeof(ElfSymbol);
  for (const ElfSymbol& s : symbols_) total += heap_bytes(s.name);
  return total;
}

std::string demangle(const std::string& name) {
  if (!name.starts_with("_Z")) return name;
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> out(
      abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status), std::free);
  return status == 0 && out ? std::string(out.get()) : name;
}

}  // namespace kvmprof
