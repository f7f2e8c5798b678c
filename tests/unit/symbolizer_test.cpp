// User frames: the test libraries (tests/support/symtest) are dlopen()ed, so the loader picks
// their base (ASLR), and the PIE test program runs as a child process; each address is named
// through /proc/PID/maps as a profile does. Kernel frames: this host's kallsyms, and a fake
// root with a crafted proc/kallsyms and proc/modules.
#include "agent/symbols/symbolizer.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

using namespace kvmprof;

namespace {

const std::string kLib = KVMPROF_SYMTEST_LIB;      // --build-id=sha1
const std::string kOther = KVMPROF_SYMTEST_OTHER;  // another library, another build-id
const std::string kExe = KVMPROF_SYMTEST_EXE;      // PIE, --build-id=none

class TempDir {
 public:
  TempDir() : path_(::testing::TempDir() + "symbolizer_XXXXXX") {
    if (::mkdtemp(path_.data()) == nullptr) path_.clear();
  }
  ~TempDir() {
    if (!path_.empty()) std::filesystem::remove_all(path_);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void write_file(const std::string& path, std::string_view text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::trunc) << text;
}

std::string lib_build_id() {
  auto elf = ElfSymbols::load(kLib);
  return elf.ok() ? (*elf)->build_id() : "<unreadable>";
}

uint64_t symbol_address(void* handle, const char* name) {
  return reinterpret_cast<uint64_t>(::dlsym(handle, name));
}

// Both test libraries loaded, and the address of one function of each.
struct TwoLibraries {
  void* lib = ::dlopen(kLib.c_str(), RTLD_NOW | RTLD_LOCAL);
  void* other = ::dlopen(kOther.c_str(), RTLD_NOW | RTLD_LOCAL);
  uint64_t alpha = lib ? symbol_address(lib, "symtest_lib_alpha") : 0;
  uint64_t gamma = other ? symbol_address(other, "symtest_other_gamma") : 0;
  bool ok() const { return lib && other; }
  ~TwoLibraries() {
    if (other) ::dlclose(other);
    if (lib) ::dlclose(lib);
  }
};

// Names an address of this process, through its maps read now.
UserName name_in_self(Symbolizer& s, uint64_t addr) {
  std::vector<MapEntry> maps = s.maps(::getpid());
  const MapEntry* map = find_map(maps, addr);
  return map ? s.user(::getpid(), *map, addr) : UserName{"<no map>", "<no map>"};
}

// The PIE test program: it prints the address of symtest_main_target and runs until its stdin
// closes.
class Child {
 public:
  explicit Child(const std::string& path) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    char* argv[] = {const_cast<char*>(path.c_str()), nullptr};
    if (::posix_spawn(&pid_, path.c_str(), &actions, nullptr, argv, environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    stdout_ = out[0];
  }
  ~Child() {
    ::close(stdin_);
    ::close(stdout_);
    if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }
  std::string read_line() const {
    std::string line;
    char c = 0;
    while (::read(stdout_, &c, 1) == 1 && c != '\n') line += c;
    return line;
  }
  void end() {  // closes its stdin and waits for it
    ::close(std::exchange(stdin_, -1));
    ::waitpid(std::exchange(pid_, -1), nullptr, 0);
  }

 private:
  pid_t pid_ = -1;
  int stdin_ = -1;
  int stdout_ = -1;
};

}  // namespace

TEST(Symbolizer, NamesFunctionsOfALibraryAtARandomBase) {
  void* handle = ::dlopen(kLib.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(handle, nullptr) << ::dlerror();
  Symbolizer s(HostRoot("/"));
  uint64_t alpha = symbol_address(handle, "symtest_lib_alpha");
  UserName name = name_in_self(s, alpha);
  EXPECT_EQ(name.function, "symtest_lib_alpha");
  EXPECT_EQ(name.build_id, lib_build_id());
  EXPECT_EQ(name_in_self(s, alpha + 2).function, "symtest_lib_alpha");
  EXPECT_EQ(name_in_self(s, symbol_address(handle, "_ZN7symtest4spinEi")).function,
            "symtest::spin(int)");
  SymbolCacheStats stats = s.stats();
  EXPECT_EQ(stats.files, 1u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.hits, 2u);
  EXPECT_GT(stats.bytes, 0u);
  ::dlclose(handle);
}

TEST(Symbolizer, NamesAFunctionOfAPieChildProcess) {
  Child child(kExe);
  ASSERT_GT(child.pid(), 0);
  uint64_t target = std::stoull(child.read_line(), nullptr, 16);
  ASSERT_NE(target, 0u);
  Symbolizer s(HostRoot("/"));
  std::vector<MapEntry> maps = s.maps(child.pid());
  const MapEntry* map = find_map(maps, target);
  ASSERT_NE(map, nullptr);
  EXPECT_EQ(map->path, std::filesystem::canonical(kExe).string());
  UserName name = s.user(child.pid(), *map, target);
  EXPECT_EQ(name.function, "symtest_main_target");
  EXPECT_EQ(name.build_id, "");  // linked with --build-id=none: cached by file identity
  EXPECT_EQ(s.user(child.pid(), *map, target + 1).function, "symtest_main_target");
  EXPECT_EQ(s.stats().hits, 1u);
  pid_t gone = child.pid();
  child.end();
  EXPECT_TRUE(s.maps(gone).empty());
  EXPECT_EQ(s.user(gone, *map, target).function, "");
}

// QEMU upgraded under a running VM: the mapped file is deleted and a new one holds its path.
// The old file is read through /proc/PID/map_files, never the new one through the path.
TEST(Symbolizer, NamesADeletedLibraryThroughMapFiles) {
  if (::geteuid() != 0) GTEST_SKIP() << "opening /proc/PID/map_files needs CAP_SYS_ADMIN";
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::string copy = dir.path() + "/lib symtest copy.so";
  std::filesystem::copy_file(kLib, copy);
  void* handle = ::dlopen(copy.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(handle, nullptr) << ::dlerror();
  uint64_t beta = symbol_address(handle, "symtest_lib_beta");
  ::unlink(copy.c_str());
  write_file(copy, "a newer file at the same path, not an ELF file");
  Symbolizer s(HostRoot("/"));
  std::vector<MapEntry> maps = s.maps(::getpid());
  const MapEntry* map = find_map(maps, beta);
  ASSERT_NE(map, nullptr);
  EXPECT_TRUE(map->deleted);
  EXPECT_EQ(map->path, copy);
  UserName name = s.user(::getpid(), *map, beta);
  EXPECT_EQ(name.function, "symtest_lib_beta");
  EXPECT_EQ(name.build_id, lib_build_id());
  ::dlclose(handle);
}

TEST(Symbolizer, NothingToNameWithoutAFile) {
  Symbolizer s(HostRoot("/"));
  MapEntry vdso{0x7fff0000, 0x7fff2000, 0, "r-xp", 0, "[vdso]", false};
  EXPECT_EQ(s.user(::getpid(), vdso, 0x7fff0010).function, "");
  MapEntry missing{0x1000, 0x2000, 0, "r-xp", 1, "/nonexistent/lib.so", false};
  UserName name = s.user(::getpid(), missing, 0x1010);
  EXPECT_EQ(name.build_id, "");
  EXPECT_EQ(name.function, "");
  TempDir dir;
  write_file(dir.path() + "/not_elf.so", "not an ELF file");
  MapEntry not_elf{0x1000, 0x2000, 0, "r-xp", 1, dir.path() + "/not_elf.so", false};
  EXPECT_EQ(s.user(::getpid(), not_elf, 0x1010).build_id, "");
  EXPECT_EQ(s.user(::getpid(), not_elf, 0x1010).build_id, "");  // remembered, not re-read
  EXPECT_EQ(s.stats().misses, 1u);
  EXPECT_EQ(s.stats().files, 0u);
}

TEST(Symbolizer, EvictsTheLeastRecentlyUsedFile) {
  TwoLibraries libs;
  ASSERT_TRUE(libs.ok()) << ::dlerror();
  const uint64_t alpha = libs.alpha, gamma = libs.gamma;
  Symbolizer s(HostRoot("/"), {.max_files = 1});
  EXPECT_EQ(name_in_self(s, alpha).function, "symtest_lib_alpha");
  EXPECT_EQ(name_in_self(s, alpha).function, "symtest_lib_alpha");  // a hit
  EXPECT_EQ(name_in_self(s, gamma).function, "symtest_other_gamma");
  EXPECT_EQ(name_in_self(s, alpha).function, "symtest_lib_alpha");
  SymbolCacheStats stats = s.stats();
  EXPECT_EQ(stats.files, 1u);
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 3u);
  EXPECT_EQ(stats.evictions, 2u);
  s.set_limits({.max_files = 8});
  EXPECT_EQ(name_in_self(s, gamma).function, "symtest_other_gamma");
  EXPECT_EQ(s.stats().files, 2u);
  s.set_limits({.max_files = 8, .max_bytes = 1});  // the file used last stays
  EXPECT_EQ(s.stats().files, 1u);
  EXPECT_EQ(s.stats().evictions, 3u);
  EXPECT_EQ(name_in_self(s, gamma).function, "symtest_other_gamma");
  EXPECT_EQ(s.stats().hits, 2u);
}

// HTTP threads build profiles at the same time; with one file cached, they evict each other.
TEST(Symbolizer, ThreadsShareOneSymbolizer) {
  TwoLibraries libs;
  ASSERT_TRUE(libs.ok()) << ::dlerror();
  const uint64_t alpha = libs.alpha, gamma = libs.gamma;
  Symbolizer s(HostRoot("/"), {.max_files = 1});
  std::vector<MapEntry> maps = s.maps(::getpid());
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        bool even = (i + t) % 2 == 0;
        uint64_t addr = even ? alpha : gamma;
        std::string name = s.user(::getpid(), *find_map(maps, addr), addr).function;
        if (name != (even ? "symtest_lib_alpha" : "symtest_other_gamma")) ++wrong;
        if (s.stats().files != 1 || s.kernel(0).has_value()) ++wrong;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(s.stats().files, 1u);
}

TEST(Symbolizer, NamesAKernelSymbolOfThisHost) {
  auto text = HostRoot("/").read_file("/proc/kallsyms");
  if (!text.ok()) GTEST_SKIP() << text.error().message();
  std::istringstream lines(*text);
  std::string line;
  std::optional<uint64_t> schedule;
  while (!schedule && std::getline(lines, line)) {
    if (line.ends_with(" T schedule")) schedule = std::stoull(line, nullptr, 16);
  }
  if (!schedule) GTEST_SKIP() << "no schedule in /proc/kallsyms";
  Symbolizer s(HostRoot("/"));
  s.refresh();
  if (*schedule == 0) {
    EXPECT_TRUE(s.kernel_addresses_hidden());
    GTEST_SKIP() << "kernel addresses are hidden (kptr_restrict)";
  }
  EXPECT_FALSE(s.kernel_addresses_hidden());
  std::optional<KernelName> name = s.kernel(*schedule);
  ASSERT_TRUE(name.has_value());
  EXPECT_EQ(name->function, "schedule");
  EXPECT_EQ(name->module, "");
  EXPECT_EQ(s.kernel(*schedule + 1)->function, "schedule");
  EXPECT_GT(s.stats().kernel_symbols, 1000u);
}

TEST(Symbolizer, ReloadsKallsymsWhenTheModuleListChanges) {
  TempDir root;
  ASSERT_FALSE(root.path().empty());
  const std::string kallsyms = root.path() + "/proc/kallsyms";
  const std::string modules = root.path() + "/proc/modules";
  write_file(kallsyms, "ffffffff81000000 T _stext\nffffffffc0001000 t kvm_first\t[kvm]\n");
  write_file(modules, "kvm 1200000 0 - Live 0xffffffffc0000000\n");
  Symbolizer s{HostRoot(root.path())};
  EXPECT_FALSE(s.kernel(0xffffffffc0001000).has_value());  // not loaded before refresh()
  s.refresh();
  ASSERT_TRUE(s.kernel(0xffffffffc0001000).has_value());
  EXPECT_EQ(s.kernel(0xffffffffc0001000)->function, "kvm_first");
  EXPECT_EQ(s.kernel(0xffffffffc0001000)->module, "kvm");
  EXPECT_EQ(s.stats().kernel_symbols, 2u);
  // A VM starting changes the use count of kvm, not where anything is: no reload.
  write_file(kallsyms, "ffffffff81000000 T _stext\nffffffffc0001000 t kvm_second\t[kvm]\n");
  write_file(modules, "kvm 1200000 3 kvm_intel, Live 0xffffffffc0000000\n");
  s.refresh();
  EXPECT_EQ(s.kernel(0xffffffffc0001000)->function, "kvm_first");
  // A module loaded: read again.
  write_file(modules,
             "kvm_intel 400000 0 - Live 0xffffffffc0200000\n"
             "kvm 1200000 3 kvm_intel, Live 0xffffffffc0000000\n");
  s.refresh();
  EXPECT_EQ(s.kernel(0xffffffffc0001000)->function, "kvm_second");
}

TEST(Symbolizer, KernelFramesWaitForAReadableKallsyms) {
  TempDir root;
  ASSERT_FALSE(root.path().empty());
  Symbolizer s{HostRoot(root.path())};
  s.refresh();  // no proc/kallsyms, no proc/modules
  EXPECT_FALSE(s.kernel(0xffffffff81000000).has_value());
  EXPECT_FALSE(s.kernel_addresses_hidden());
  write_file(root.path() + "/proc/kallsyms", "0000000000000000 T _stext\n0000000000000000 T x\n");
  s.refresh();  // never loaded: tried again
  EXPECT_TRUE(s.kernel_addresses_hidden());
  EXPECT_FALSE(s.kernel(0).has_value());
}
