// The test binaries come from tests/support/symtest (built by tests/symbols.cmake); what their
// symbols and build-ids should be is asked of binutils (nm, readelf), not of our reader.
#include "agent/symbols/elf_symbols.h"

#include <elf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>

#include "agent/system/fd.h"

using namespace kvmprof;

namespace {

const std::string kLib = KVMPROF_SYMTEST_LIB;                     // .symtab, --build-id=sha1
const std::string kLibDynsym = KVMPROF_SYMTEST_LIB_DYNSYM;        // kLib stripped: .dynsym only
const std::string kExe = KVMPROF_SYMTEST_EXE;                     // PIE, --build-id=none
const std::string kBareStripped = KVMPROF_SYMTEST_BARE_STRIPPED;  // static, no table at all

std::string command_output(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  ::pclose(pipe);
  return out;
}

// What `readelf -n` shows as the build-id, "" when the file has none.
std::string readelf_build_id(const std::string& path) {
  std::string notes = command_output("readelf -n '" + path + "'");
  size_t at = notes.find("Build ID: ");
  if (at == std::string::npos) return "";
  at += 10;
  return notes.substr(at, notes.find_first_of(" \n", at) - at);
}

// The address `nm` gives the symbol in the file, 0 when absent.
uint64_t nm_address(const std::string& path, const std::string& name) {
  std::istringstream lines(command_output("nm '" + path + "' 2>/dev/null"));
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string addr, type, symbol;
    if (fields >> addr >> type >> symbol && symbol == name) return std::stoull(addr, nullptr, 16);
  }
  return 0;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The bytes as an anonymous file, for load_fd.
Result<std::shared_ptr<const ElfSymbols>> load_bytes(const std::string& bytes) {
  Fd fd(::memfd_create("elf_symbols_test", MFD_CLOEXEC));
  if (!fd.valid() ||
      ::write(fd.get(), bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
    return Error{errno, "memfd"};
  }
  return ElfSymbols::load_fd(fd.get(), "memfd");
}

std::shared_ptr<const ElfSymbols> load_ok(const std::string& path) {
  auto loaded = ElfSymbols::load(path);
  EXPECT_TRUE(loaded.ok()) << loaded.error().message();
  return loaded.ok() ? *loaded : nullptr;
}

std::string name_at(const ElfSymbols& elf, uint64_t vaddr) {
  const ElfSymbol* s = elf.find(vaddr);
  return s ? s->name : "<none>";
}

}  // namespace

TEST(ElfSymbols, ReadsSymtabAndBuildIdOfALibrary) {
  auto elf = load_ok(kLib);
  ASSERT_NE(elf, nullptr);
  EXPECT_EQ(elf->table(), "symtab");
  EXPECT_EQ(elf->build_id().size(), 40u);  // sha1
  EXPECT_EQ(elf->build_id(), readelf_build_id(kLib));
  uint64_t alpha = nm_address(kLib, "symtest_lib_alpha");
  ASSERT_NE(alpha, 0u);
  EXPECT_EQ(name_at(*elf, alpha), "symtest_lib_alpha");
  EXPECT_EQ(name_at(*elf, alpha + 1), "symtest_lib_alpha");
  EXPECT_EQ(elf->find(alpha)->addr, alpha);
  uint64_t spin = nm_address(kLib, "_ZN7symtest4spinEi");
  EXPECT_EQ(name_at(*elf, spin), "_ZN7symtest4spinEi");
  EXPECT_EQ(name_at(*elf, 0), "<none>");
  EXPECT_EQ(elf->vaddr_of_offset(0), 0u);  // a library's first segment maps offset 0 at 0
  EXPECT_EQ(elf->vaddr_of_offset(1u << 30), std::nullopt);
  EXPECT_GT(elf->bytes(), sizeof(ElfSymbols));
}

TEST(ElfSymbols, SymbolWithoutSizeReachesTheNextSymbol) {
  auto elf = load_ok(kLib);
  ASSERT_NE(elf, nullptr);
  uint64_t unsized = nm_address(kLib, "symtest_lib_unsized");
  uint64_t sized = nm_address(kLib, "symtest_lib_sized");
  ASSERT_EQ(sized - unsized, 16u);
  EXPECT_EQ(name_at(*elf, unsized + 15), "symtest_lib_unsized");
  EXPECT_EQ(name_at(*elf, sized), "symtest_lib_sized");
  EXPECT_EQ(name_at(*elf, sized + 1), "<none>");  // its .size is 1
}

TEST(ElfSymbols, StrippedLibraryFallsBackToDynsym) {
  auto elf = load_ok(kLibDynsym);
  ASSERT_NE(elf, nullptr);
  EXPECT_EQ(elf->table(), "dynsym");
  EXPECT_EQ(elf->build_id(), readelf_build_id(kLib));          // strip keeps the note
  EXPECT_EQ(nm_address(kLibDynsym, "symtest_lib_alpha"), 0u);  // no .symtab left for nm
  EXPECT_EQ(name_at(*elf, nm_address(kLib, "symtest_lib_beta") + 2), "symtest_lib_beta");
}

TEST(ElfSymbols, ExecutableWithoutBuildId) {
  auto elf = load_ok(kExe);
  ASSERT_NE(elf, nullptr);
  EXPECT_EQ(readelf_build_id(kExe), "");
  EXPECT_EQ(elf->build_id(), "");
  EXPECT_EQ(elf->table(), "symtab");
  uint64_t target = nm_address(kExe, "symtest_main_target");
  ASSERT_NE(target, 0u);
  EXPECT_EQ(name_at(*elf, target), "symtest_main_target");
}

TEST(ElfSymbols, StrippedStaticExecutableHasNoTable) {
  auto elf = load_ok(kBareStripped);
  ASSERT_NE(elf, nullptr);
  EXPECT_EQ(elf->table(), "none");
  EXPECT_EQ(elf->build_id(), readelf_build_id(kBareStripped));
  EXPECT_FALSE(elf->build_id().empty());
  EXPECT_EQ(elf->find(0x401000), nullptr);
  EXPECT_NE(elf->vaddr_of_offset(0), std::nullopt);
}

TEST(ElfSymbols, ThirtyTwoBitElfLoads) {
  Elf32_Ehdr ehdr{};
  std::copy_n(ELFMAG, SELFMAG, ehdr.e_ident);
  ehdr.e_ident[EI_CLASS] = ELFCLASS32;
  ehdr.e_ident[EI_DATA] = ELFDATA2LSB;
  ehdr.e_ident[EI_VERSION] = EV_CURRENT;
  ehdr.e_type = ET_EXEC;
  ehdr.e_machine = EM_386;
  ehdr.e_version = EV_CURRENT;
  ehdr.e_phoff = sizeof(Elf32_Ehdr);
  ehdr.e_ehsize = sizeof(Elf32_Ehdr);
  ehdr.e_phentsize = sizeof(Elf32_Phdr);
  ehdr.e_phnum = 1;
  Elf32_Phdr phdr{PT_LOAD, 0, 0x8048000, 0x8048000, 0x100, 0x100, PF_R | PF_X, 0x1000};
  std::string bytes(reinterpret_cast<const char*>(&ehdr), sizeof(ehdr));
  bytes.append(reinterpret_cast<const char*>(&phdr), sizeof(phdr));
  bytes.resize(0x100);
  auto elf = load_bytes(bytes);
  ASSERT_TRUE(elf.ok()) << elf.error().message();
  EXPECT_EQ((*elf)->table(), "none");
  EXPECT_EQ((*elf)->vaddr_of_offset(0x10), 0x8048010u);
}

TEST(ElfSymbols, RejectsWhatIsNotElf) {
  EXPECT_FALSE(load_bytes("#!/bin/sh\necho not an ELF file\n").ok());
  EXPECT_FALSE(load_bytes("").ok());
  EXPECT_FALSE(ElfSymbols::load("/dev/null").ok());
  EXPECT_FALSE(ElfSymbols::load("/").ok());
  auto missing = ElfSymbols::load("/nonexistent/file.so");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().err, ENOENT);
  auto truncated = load_bytes(read_bytes(kLib).substr(0, 100));
  EXPECT_FALSE(truncated.ok());
}

// Every prefix of a real file, and the file with random bytes overwritten: each loads or
// fails, never crashes, and what loads answers lookups.
TEST(ElfSymbols, TruncatedAndCorruptedFilesNeverCrash) {
  const std::string whole = read_bytes(kLib);
  ASSERT_GT(whole.size(), 4096u);
  auto probe = [](const std::string& bytes) {
    auto elf = load_bytes(bytes);
    if (!elf.ok()) return;
    for (uint64_t vaddr = 0; vaddr < 0x3000; vaddr += 0x10) (*elf)->find(vaddr);
    (*elf)->vaddr_of_offset(0x1000);
  };
  for (size_t size = 0; size < whole.size(); size += 97) probe(whole.substr(0, size));
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    std::string bytes = whole;
    for (int flips = 0; flips < 8; ++flips) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    probe(bytes);
  }
}

TEST(ElfSymbols, DemanglesCppNamesOnly) {
  EXPECT_EQ(demangle("_ZN7symtest4spinEi"), "symtest::spin(int)");
  EXPECT_EQ(demangle("symtest_lib_alpha"), "symtest_lib_alpha");
  EXPECT_EQ(demangle("_Z_not_mangled"), "_Z_not_mangled");
  EXPECT_EQ(demangle(""), "");
}
