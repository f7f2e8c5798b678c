#include "agent/symbols/proc_maps.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "agent/system/host_root.h"

using namespace kvmprof;

namespace {

constexpr std::string_view kMaps =
    "55d0c0a00000-55d0c0a02000 r--p 00000000 fd:01 1234                       /usr/bin/qemu "
    "system\n"
    "55d0c0a02000-55d0c0a10000 r-xp 00002000 fd:01 1234                       /usr/bin/qemu "
    "system\n"
    "7f2c1a000000-7f2c1a022000 r-xp 00002000 fd:01 99   /tmp/lib x.so (deleted)\n"
    "7f2c1a022000-7f2c1a023000 rw-p 00000000 00:00 0 \n"
    "not a maps line\n"
    "7f2c1b000000-7f2c1a000000 r-xp 00000000 00:00 0 \n"  // end before start
    "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]\n"
    "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]";

// Where this test binary's own code is mapped.
__attribute__((noinline)) int local_function() { return 42; }

}  // namespace

TEST(ProcMaps, ParsesEveryFieldAndKeepsSpacesInPaths) {
  auto maps = parse_maps(kMaps);
  ASSERT_EQ(maps.size(), 6u);
  EXPECT_EQ(maps[1].start, 0x55d0c0a02000u);
  EXPECT_EQ(maps[1].end, 0x55d0c0a10000u);
  EXPECT_EQ(maps[1].offset, 0x2000u);
  EXPECT_EQ(maps[1].perms, "r-xp");
  EXPECT_EQ(maps[1].inode, 1234u);
  EXPECT_EQ(maps[1].path, "/usr/bin/qemu system");
  EXPECT_FALSE(maps[1].deleted);
  EXPECT_EQ(maps[2].path, "/tmp/lib x.so");
  EXPECT_TRUE(maps[2].deleted);
  EXPECT_EQ(maps[3].path, "");  // anonymous
  EXPECT_EQ(maps[4].path, "[stack]");
  EXPECT_EQ(maps[5].path, "[vsyscall]");  // the last line has no newline
}

TEST(ProcMaps, FindsExecutableMappingsOnly) {
  auto maps = parse_maps(kMaps);
  ASSERT_EQ(find_map(maps, 0x55d0c0a02000), &maps[1]);
  EXPECT_EQ(find_map(maps, 0x55d0c0a0ffff), &maps[1]);
  EXPECT_EQ(find_map(maps, 0x55d0c0a10000), nullptr);  // the gap after it
  EXPECT_EQ(find_map(maps, 0x55d0c0a00000), nullptr);  // r--p
  EXPECT_EQ(find_map(maps, 0x7ffd00000010), nullptr);  // rw-p
  EXPECT_EQ(find_map(maps, 0x7f2c1a021fff), &maps[2]);
  EXPECT_EQ(find_map(maps, 0x1000), nullptr);
  EXPECT_EQ(find_map({}, 0x1000), nullptr);
}

TEST(ProcMaps, SkipsJunk) {
  EXPECT_TRUE(parse_maps("").empty());
  EXPECT_TRUE(parse_maps("\n\n").empty());
  EXPECT_TRUE(parse_maps("1000-2000 r-xp\n").empty());
  EXPECT_TRUE(parse_maps("1000-2000 r-xp 0 fd01 5 /x\n").empty());    // no ':' in dev
  EXPECT_TRUE(parse_maps("1000-2000 r-xp 0 fd:01 x5 /x\n").empty());  // inode
  EXPECT_TRUE(parse_maps("10g0-2000 r-xp 0 fd:01 5 /x\n").empty());   // start
  EXPECT_TRUE(parse_maps("1000-2000 r-x 0 fd:01 5 /x\n").empty());    // perms
  EXPECT_EQ(parse_maps("1000-2000 r-xp 0 fd:01 5 /x\n").size(), 1u);
}

TEST(ProcMaps, FindsThisBinaryInProcSelfMaps) {
  auto text = HostRoot("/").read_file("/proc/self/maps");
  ASSERT_TRUE(text.ok()) << text.error().message();
  auto maps = parse_maps(*text);
  ASSERT_FALSE(maps.empty());
  const MapEntry* map = find_map(maps, reinterpret_cast<uint64_t>(&local_function));
  ASSERT_NE(map, nullptr);
  EXPECT_EQ(map->path, std::filesystem::read_symlink("/proc/self/exe").string());
  EXPECT_EQ(map->perms[2], 'x');
  EXPECT_FALSE(map->deleted);
  EXPECT_EQ(local_function(), 42);
}

// A real mapping of a file whose name has spaces, then unlinked: the kernel appends
// " (deleted)", the parser removes it and says so.
TEST(ProcMaps, ReadsADeletedFileWithSpacesInItsName) {
  std::string dir_template = ::testing::TempDir() + "maps_test_XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template.data()), nullptr);
  std::string path = dir_template + "/with  two spaces.bin";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 4096), 0);
  void* mem = ::mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  ASSERT_NE(mem, MAP_FAILED);
  auto find_mem = [&]() -> MapEntry {
    for (const MapEntry& m : parse_maps(*HostRoot("/").read_file("/proc/self/maps"))) {
      if (m.start == reinterpret_cast<uint64_t>(mem)) return m;
    }
    return {};
  };
  EXPECT_EQ(find_mem().path, path);
  EXPECT_FALSE(find_mem().deleted);
  ::unlink(path.c_str());
  MapEntry deleted = find_mem();
  EXPECT_EQ(deleted.path, path);
  EXPECT_TRUE(deleted.deleted);
  EXPECT_EQ(deleted.end - deleted.start, 4096u);
  EXPECT_EQ(deleted.perms, "r--p");
  ::munmap(mem, 4096);
  ::rmdir(dir_template.c_str());
}
