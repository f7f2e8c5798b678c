// The profile builder on crafted windows, symbolized for real: this host's kallsyms, this
// test binary's own functions through /proc/self/maps, and guest kallsyms files written here.
#include "agent/profile/profile_builder.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace kvmprof {

// A function of this binary for the user frames: not static, so it is in .symtab.
extern "C" __attribute__((noinline)) int kvmprof_builder_test_marker(int x) { return x * 3 + 1; }

namespace {

const std::string kA = "00000000-0000-0000-0000-00000000000a", kB = "00000000-0000-0000-0000-00000000000b";
constexpr uint64_t kSecond = 1'000'000'000;

// The address of `name` in this host's /proc/kallsyms; 0 when it is hidden (not root).
uint64_t kernel_symbol(const std::string& name) {
  std::ifstream in("/proc/kallsyms");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string addr, type, sym;
    f >> addr >> type >> sym;
    if (sym == name && (type == "T" || type == "t")) return std::stoull(addr, nullptr, 16);
  }
  return 0;
}

std::string write_file(const std::string& name, const std::string& text) {
  auto path = std::filesystem::temp_directory_path() / ("kvmprof-builder-" + std::to_string(::getpid()) + "-" + name);
  std::ofstream(path) << text;
  return path.string();
}

ProfileScope scope(int64_t seconds = 30) {
  ProfileScope s;
  s.seconds = seconds;
  s.end_unix_ns = 1'700'000'000 * kSecond;
  s.end_mono_ns = 100 * kSecond;
  s.names = {{kA, "web-1"}, {kB, "db \"1\""}};
  return s;
}

const ProfileLocation& loc(const Profile& p, size_t id) { return p.locations.at(id - 1); }
const ProfileMapping& map_of(const Profile& p, size_t id) { return p.mappings.at(loc(p, id).mapping - 1); }

int64_t num_label(const ProfileSample& s, const std::string& key) {
  for (const auto& [k, v] : s.num_labels)
    if (k == key) return v;
  return -1;
}

TEST(ProfileBuilder, NamesHostKernelAndUserFramesAndLabelsEverySample) {
  const uint64_t schedule = kernel_symbol("schedule");
  if (schedule == 0) GTEST_SKIP() << "needs root: /proc/kallsyms shows no addresses";
  const auto marker = reinterpret_cast<uint64_t>(&kvmprof_builder_test_marker);
  ProfileWindow w;
  w.vms = {{kA, {"cpu-clock", 10'101'010, ""}}};
  w.stacks = {SampleStack{schedule + 1, {schedule + 1}, {}}, SampleStack{marker + 2, {}, {}}};
  const pid_t me = ::getpid();
  w.samples = {{90 * kSecond, 0, 0, me, me, 0u, SampleMode::kHostKernel, 10'000'000},
               {91 * kSecond, 0, 0, me, me, 0u, SampleMode::kHostKernel, 11'000'000},
               {92 * kSecond, 0, 1, me, me + 1, std::nullopt, SampleMode::kHostUser, 9'000'000}};
  Symbolizer symbolizer{HostRoot("/")};
  GuestKallsyms guests;
  Profile p = build_profile(w, scope(), symbolizer, guests);
  ASSERT_EQ(p.samples.size(), 2u);  // the two kernel samples are one, with a count of 2
  EXPECT_EQ(p.samples[0].count, 2);
  EXPECT_EQ(p.samples[0].nanos, 21'000'000);
  EXPECT_EQ(p.period_nanos, 10'101'010);
  EXPECT_EQ(p.duration_nanos, 30 * static_cast<int64_t>(kSecond));
  EXPECT_EQ(p.time_nanos, 1'700'000'000 * static_cast<int64_t>(kSecond) - 30 * static_cast<int64_t>(kSecond));
  const ProfileLocation& k = loc(p, p.samples[0].locations.at(0));
  EXPECT_EQ(k.function, "schedule");
  EXPECT_EQ(k.filename, "[kernel.kallsyms]");
  EXPECT_EQ(k.kind, FrameKind::kHostKernel);
  EXPECT_EQ(label(p.samples[0], "domain"), "web-1");
  EXPECT_EQ(label(p.samples[0], "uuid"), kA);
  EXPECT_EQ(label(p.samples[0], "execution_mode"), "Host Kernel");
  EXPECT_EQ(num_label(p.samples[0], "vcpu"), 0);
  const ProfileSample& user = p.samples[1];
  EXPECT_EQ(label(user, "thread"), "emulator");
  EXPECT_EQ(label(user, "execution_mode"), "Host User");
  const size_t u = user.locations.at(0);
  EXPECT_EQ(loc(p, u).function, "kvmprof_builder_test_marker");
  EXPECT_EQ(loc(p, u).address, marker + 2);
  EXPECT_EQ(map_of(p, u).file, std::filesystem::read_symlink("/proc/self/exe").string());
  EXPECT_LE(map_of(p, u).start, marker);
  EXPECT_GT(map_of(p, u).limit, marker);
  EXPECT_TRUE(map_of(p, u).has_functions);
}

TEST(ProfileBuilder, AProcessThatIsGoneLeavesAddressesUnderAnUnknownMapping) {
  ProfileWindow w;
  w.vms = {{kA, {"cpu-clock", 0, ""}}};
  w.stacks = {SampleStack{0x55550000, {}, {}}};
  w.samples = {{90 * kSecond, 0, 0, 999'999'999, 999'999'999, 0u, SampleMode::kHostUser, 0}};
  Symbolizer symbolizer{HostRoot("/")};
  GuestKallsyms guests;
  Profile p = build_profile(w, scope(), symbolizer, guests);
  ASSERT_EQ(p.samples.size(), 1u);
  const size_t l = p.samples[0].locations.at(0);
  EXPECT_EQ(loc(p, l).function, "");
  EXPECT_EQ(map_of(p, l).file, "[unknown]");
  // A period of events, not time: the profile says its nanoseconds are unknown.
  EXPECT_NE(p.comments.front().find("cpu/nanoseconds is 0"), std::string::npos);
}

TEST(ProfileBuilder, AnonymousCodeIsAnonAndAnIpWithoutModeGoesByItsAddress) {
  // Executable anonymous memory, as TCG's translated code is.
  void* code = ::mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(code, MAP_FAILED);
  const auto jit = reinterpret_cast<uint64_t>(code) + 16;
  ProfileWindow w;
  w.vms = {{kA, {"cycles", 0, ""}}};
  w.stacks = {SampleStack{jit, {}, {}}, SampleStack{0xffffffff81000010, {}, {}}};
  const pid_t me = ::getpid();
  w.samples = {{90 * kSecond, 0, 0, me, me, 0u, SampleMode::kHostUser, 0},
               {90 * kSecond, 0, 1, me, me, 0u, SampleMode::kUnknown, 0}};
  Symbolizer symbolizer{HostRoot("/")};
  GuestKallsyms guests;
  Profile p = build_profile(w, scope(), symbolizer, guests);
  ::munmap(code, 4096);
  ASSERT_EQ(p.samples.size(), 2u);
  EXPECT_EQ(map_of(p, p.samples[0].locations.at(0)).file, "//anon");
  EXPECT_EQ(loc(p, p.samples[1].locations.at(0)).kind, FrameKind::kHostKernel);
  EXPECT_EQ(map_of(p, p.samples[1].locations.at(0)).file, "[kernel.kallsyms]");
  EXPECT_EQ(label(p.samples[1], "execution_mode"), "Unknown");
  EXPECT_EQ(p.default_sample_type, "samples");  // cycles every N events: no CPU time per sample
}

TEST(GuestKallsyms, CopiesAreKeptWithinTheByteBoundLeastRecentlyUsedFirstOutAndAMismatchIsWarnedOnce) {
  const std::string a = write_file("a", "ffffffff81000000 T _stext\nffffffff81001000 T fn_a\n");
  const std::string b = write_file("b", "ffffffff81000000 T _stext\nffffffff81001000 T fn_b\n");
  GuestKallsyms guests;
  ASSERT_TRUE(guests.get(a).symbols);
  const size_t one = guests.bytes();
  ASSERT_TRUE(guests.get(b).symbols);
  EXPECT_EQ(guests.bytes(), 2 * one);
  guests.set_max_bytes(one);  // b, used last, stays
  EXPECT_EQ(guests.bytes(), one);
  EXPECT_EQ(guests.get(b).symbols->find(0xffffffff81001000)->name, "fn_b");
  EXPECT_EQ(guests.bytes(), one);
  ASSERT_TRUE(guests.get(a).symbols);  // loaded again; b goes
  EXPECT_EQ(guests.bytes(), one);
  EXPECT_TRUE(guests.first_mismatch(a, kA));
  EXPECT_FALSE(guests.first_mismatch(a, kA));
  EXPECT_TRUE(guests.first_mismatch(a, kB));
  EXPECT_FALSE(guests.get("/nonexistent").symbols);
  std::filesystem::remove(a);
  std::filesystem::remove(b);
}

TEST(ProfileBuilder, GuestFramesStayGuestAddressesNamedOnlyByAMatchingGuestKallsyms) {
  const std::string good = write_file("good", "ffffffff81000000 T _stext\nffffffff81001000 T native_safe_halt\n"
                                              "ffffffff81002000 t guest_fn\nffffffff81100000 T _etext\n");
  const std::string other_boot = write_file("other", "ffffffff91000000 T _stext\nffffffff91001000 T native_safe_halt\n"
                                                     "ffffffff91100000 T _etext\n");
  ProfileWindow w;
  w.vms = {{kA, {"cpu-clock", 0, good}}, {kB, {"cpu-clock", 0, other_boot}}};
  w.stacks = {SampleStack{0xffffffff81001010, {}, {}}, SampleStack{0x401000, {}, {}}};
  w.samples = {{90 * kSecond, 0, 0, 1, 2, 0u, SampleMode::kGuestKernel, 0},
               {90 * kSecond, 0, 1, 1, 2, 0u, SampleMode::kGuestUser, 0},
               {90 * kSecond, 1, 0, 3, 4, 0u, SampleMode::kGuestKernel, 0}};
  Symbolizer symbolizer{HostRoot("/")};
  GuestKallsyms guests;
  Profile p = build_profile(w, scope(), symbolizer, guests);
  ASSERT_EQ(p.samples.size(), 3u);
  const size_t a = p.samples[0].locations.at(0), user = p.samples[1].locations.at(0), b = p.samples[2].locations.at(0);
  EXPECT_EQ(loc(p, a).function, "native_safe_halt");
  EXPECT_EQ(loc(p, a).kind, FrameKind::kGuest);
  EXPECT_EQ(map_of(p, a).file, "[guest_kernel]");
  EXPECT_EQ(label(p.samples[0], "execution_mode"), "Guest Kernel");
  EXPECT_EQ(loc(p, user).function, "");
  EXPECT_EQ(map_of(p, user).file, "[guest_user]");
  EXPECT_EQ(loc(p, b).function, "");  // the other boot's copy covers none of its addresses: not used
  EXPECT_EQ(loc(p, b).address, 0xffffffff81001010u);
  std::string comments;
  for (const auto& c : p.comments) comments += c + "\n";
  EXPECT_NE(comments.find("guest_kallsyms of VM \"web-1\" names 1 of 1 guest kernel addresses"), std::string::npos) << comments;
  EXPECT_NE(comments.find("guest_kallsyms of VM \"db \\\"1\\\"\" not used: its symbols cover only 0 of 1"), std::string::npos)
      << comments;
  std::filesystem::remove(good);
  std::filesystem::remove(other_boot);
}

TEST(ProfileBuilder, AMissingGuestKallsymsAndAModeFilterAreReported) {
  ProfileWindow w;
  w.vms = {{kA, {"cpu-clock", 10'000'000, "/nonexistent/kallsyms"}}};
  w.stacks = {SampleStack{0xffffffff81001010, {}, {}}, SampleStack{0x1234, {}, {}}};
  w.samples = {{90 * kSecond, 0, 0, 1, 2, 0u, SampleMode::kGuestKernel, 10'000'000},
               {95 * kSecond, 0, 1, 1, 2, 0u, SampleMode::kHostUser, 10'000'000}};
  w.complete_since_ns = 90 * kSecond;
  ProfileScope s = scope(30);
  s.modes = {SampleMode::kGuestKernel, SampleMode::kGuestUser};
  Symbolizer symbolizer{HostRoot("/")};
  GuestKallsyms guests;
  Profile p = build_profile(w, s, symbolizer, guests);
  ASSERT_EQ(p.samples.size(), 1u);
  EXPECT_EQ(label(p.samples[0], "execution_mode"), "Guest Kernel");
  ASSERT_EQ(p.comments.size(), 2u);
  EXPECT_NE(p.comments[0].find("not used: cannot read /nonexistent/kallsyms"), std::string::npos) << p.comments[0];
  // Asked for 30 s; the store holds 10 s.
  EXPECT_NE(p.comments[1].find("samples are complete for the last 10 s only"), std::string::npos) << p.comments[1];
}

}  // namespace
}  // namespace kvmprof
