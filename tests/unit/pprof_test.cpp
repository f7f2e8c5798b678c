// The pprof encoding is read by the real consumer, `go tool pprof` (golang-go), on a crafted
// profile of two VMs with every kind of frame; and checked against the rules of google/pprof's
// CheckValid by a small protobuf reader, so a broken encoding fails here and not in Parca.
#include "exporters/pprof.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "agent/http/gzip.h"

using namespace kvmprof;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kPeriod = 10'000'000;  // 100 Hz

ProfileSample sample(std::vector<size_t> leaf_first, int64_t count, std::string domain,
                     std::string mode) {
  ProfileSample s{std::move(leaf_first), count, count * kPeriod, {}, {}};
  s.labels = {{"domain", domain},
              {"uuid", domain == "web-1" ? "3cd4a570-41dc-49b4-9ff4-5bb95413e660"
                                         : "00000000-0000-0000-0000-000000000002"},
              {"execution_mode", std::move(mode)}};
  return s;
}

ProfileSample vcpu_sample(std::vector<size_t> leaf_first, int64_t count, std::string domain,
                          int64_t vcpu, std::string mode) {
  ProfileSample s = sample(std::move(leaf_first), count, std::move(domain), std::move(mode));
  s.num_labels = {{"vcpu", vcpu}};
  return s;
}

// 22 samples: vCPU threads in KVM (host kernel) and QEMU (host user), the guests' own kernel and
// user code, an emulator thread, and a frame the hypervisor could not place.
Profile crafted() {
  const std::string qemu = "/usr/bin/qemu-system-x86_64";
  Profile p;
  p.time_nanos = 1'700'000'000'000'000'000;
  p.duration_nanos = 30'000'000'000;
  p.period_nanos = kPeriod;
  p.mappings = {{0xffffffff81000000, 0xffffffff83000000, 0, "[kernel.kallsyms]", "", true},
                {0x55d0c0000000, 0x55d0c0a00000, 0x1000, qemu,
                 "4c1f3e2a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e", true},
                {0xffffffff80000000, 0xffffffffc0000000, 0, "[guest_kernel]", "", true},
                {0x400000, 0x800000, 0, "[guest_user]", "", false}};
  using enum FrameKind;
  p.locations = {
      {0xffffffff8101a000, 1, kHostKernel, "vmx_vcpu_run", "[kernel.kallsyms]"},
      {0xffffffff81020000, 1, kHostKernel, "kvm_arch_vcpu_ioctl_run", "[kernel.kallsyms]"},
      {0xffffffff81021000, 1, kHostKernel, "kvm_vcpu_ioctl", "[kernel.kallsyms]"},
      {0x55d0c0100000, 2, kHostUser, "kvm_cpu_exec", qemu},
      {0x55d0c0200000, 2, kHostUser, "qemu_thread_start", qemu},
      {0x55d0c0300000, 2, kHostUser, "", ""},
      {0xffffffff81a00000, 3, kGuest, "native_safe_halt", "[guest_kernel]"},
      {0x401000, 4, kGuest, "", ""},
      {0x7f0000001000, 0, kHostUser, "", ""},
      {0x55d0c0100040, 2, kHostUser, "kvm_cpu_exec", qemu},  // same function as 4
      {0x55d0c0400000, 2, kHostUser, "main_loop_wait", qemu}};
  p.samples = {vcpu_sample({1, 2, 3, 4, 5}, 5, "web-1", 0, "Host Kernel"),
               vcpu_sample({6, 10, 5}, 3, "web-1", 1, "Host User"),
               vcpu_sample({7}, 7, "web-1", 0, "Guest Kernel"),
               vcpu_sample({8}, 2, "db-2", 0, "Guest User"),
               vcpu_sample({9}, 1, "db-2", 1, "Hypervisor"),
               sample({11, 5}, 4, "db-2", "Host User")};
  p.samples.back().labels.push_back({"thread", "emulator"});
  p.comments = {"guest kallsyms of db-2 did not match its kernel"};
  return p;
}

// --- A protobuf reader just big enough for CheckValid's rules. ---

struct Field {
  int number = 0;
  uint64_t varint = 0;
  std::string_view bytes;
};

std::vector<Field> fields(std::string_view m) {
  std::vector<Field> out;
  size_t i = 0;
  auto varint = [&] {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      const auto b = static_cast<uint8_t>(m.at(i++));  // throws when truncated
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
  };
  while (i < m.size()) {
    const uint64_t key = varint();
    Field f{static_cast<int>(key >> 3), 0, {}};
    if ((key & 7) == 0) {
      f.varint = varint();
    } else if ((key & 7) == 2) {
      const uint64_t n = varint();
      if (n > m.size() - i) throw std::runtime_error("length beyond the message");
      f.bytes = m.substr(i, n);
      i += n;
    } else {
      throw std::runtime_error("wire type " + std::to_string(key & 7));
    }
    out.push_back(f);
  }
  return out;
}

size_t packed_count(std::string_view run) {
  size_t n = 0;
  for (char c : run) n += !(static_cast<uint8_t>(c) & 0x80);  // one final byte per varint
  return n;
}

uint64_t field_of(std::string_view message, int number) {
  for (const Field& f : fields(message))
    if (f.number == number) return f.varint;
  return 0;
}

// google/pprof CheckValid: string_table[0] == "", one value per sample type, ids non-zero and
// unique, every referenced id defined.
void expect_valid(const std::string& pb) {
  std::vector<std::string_view> strings, samples, locations;
  std::map<int, std::set<uint64_t>> ids;  // by field: 3 mapping, 4 location, 5 function
  for (const Field& f : fields(pb)) {
    if (f.number == 6) strings.push_back(f.bytes);
    if (f.number == 2) samples.push_back(f.bytes);
    if (f.number == 4) locations.push_back(f.bytes);
    if (f.number < 3 || f.number > 5) continue;
    const uint64_t id = field_of(f.bytes, 1);
    EXPECT_NE(id, 0u) << "field " << f.number;
    EXPECT_TRUE(ids[f.number].insert(id).second)
        << "duplicate id " << id << " in field " << f.number;
  }
  ASSERT_FALSE(strings.empty());
  EXPECT_EQ(strings[0], "");
  EXPECT_EQ(std::set<std::string_view>(strings.begin(), strings.end()).size(), strings.size());
  for (std::string_view s : samples) {
    for (const Field& f : fields(s)) {
      if (f.number == 2) {
        EXPECT_EQ(packed_count(f.bytes), 2u) << "values of a sample";
      }
    }
  }
  for (std::string_view l : locations) {
    if (uint64_t mapping = field_of(l, 2)) {
      EXPECT_TRUE(ids[3].contains(mapping));
    }
    for (const Field& f : fields(l)) {
      if (f.number == 4) {
        EXPECT_TRUE(ids[5].contains(field_of(f.bytes, 1)));
      }
    }
  }
}

// --- `go tool pprof`, as a user runs it. ---

// -symbolize=none: a qemu binary installed here must not change what pprof prints.
class GoPprof : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("command -v go >/dev/null 2>&1") != 0) {
      GTEST_FAIL() << "`go` is not on PATH: these tests need golang-go (apt-get install golang-go; "
                      "deploy/test.sh installs it)";
    }
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string pprof(const std::string& args, const Profile& profile) {
    const fs::path file = dir_ / "profile.pb.gz";
    std::ofstream(file, std::ios::binary) << gzip(encode_pprof(profile));
    const std::string d = dir_.string();
    const std::string cmd = "env HOME=" + d + " GOCACHE=" + d + "/gocache GOPATH=" + d +
                            "/gopath TZ=UTC go tool pprof -symbolize=none " + args + " " +
                            file.string() + " 2>" + d + "/stderr";
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(cmd.c_str(), "r"), ::pclose);
    std::string out;
    char buf[4096];
    size_t n;
    while (pipe && (n = std::fread(buf, 1, sizeof buf, pipe.get())) > 0) out.append(buf, n);
    const int status = pipe ? ::pclose(pipe.release()) : -1;
    std::stringstream err;
    err << std::ifstream(dir_ / "stderr").rdbuf();
    EXPECT_EQ(status, 0) << cmd << "\n" << err.str();
    return out;
  }

  fs::path dir_ = fs::temp_directory_path() / ("kvmprof-pprof-" + std::to_string(::getpid()));
};

// The -raw line of the mapping a location sits in, found by the location's function: the
// location line is "     7: 0xffffffff81a00000 M=3 native_safe_halt [guest_kernel]:0 s=0".
std::string mapping_line_of(const std::string& raw, const std::string& function) {
  const size_t at = raw.find(" " + function + " ", raw.find("Locations\n"));
  if (at == std::string::npos) return "";
  const size_t begin = raw.rfind('\n', at) + 1;
  const std::string location = raw.substr(begin, at - begin);
  const size_t m = location.find(" M=");
  if (m == std::string::npos) return "";
  const size_t line = raw.find("\n" + location.substr(m + 3) + ": 0x", raw.find("Mappings\n"));
  return line == std::string::npos ? "" : raw.substr(line + 1, raw.find('\n', line + 1) - line - 1);
}

}  // namespace

TEST(Pprof, EmptyProfileIsTheHeaderAlone) {
  std::string expected =
      "\x0a\x04\x08\x01\x10\x02"   // sample_type {samples, count}
      "\x0a\x04\x08\x03\x10\x04"   // sample_type {cpu, nanoseconds}
      "\x5a\x04\x08\x03\x10\x04";  // period_type {cpu, nanoseconds}
  for (std::string s : {"", "samples", "count", "cpu", "nanoseconds"}) {
    expected += "\x32" + std::string(1, static_cast<char>(s.size())) + s;  // string_table
  }
  EXPECT_EQ(encode_pprof(Profile{}), expected);
}

TEST(Pprof, EveryProfileKeepsCheckValidsRules) {
  expect_valid(encode_pprof(Profile{}));
  expect_valid(encode_pprof(crafted()));
  Profile negative = crafted();  // big and negative varints must still frame correctly
  negative.time_nanos = -1;
  negative.samples[0].num_labels = {{"vcpu", -5}};
  expect_valid(encode_pprof(negative));
}

TEST(Pprof, FunctionsAreSharedByName) {
  // 11 locations, 8 of them named, by 7 functions: kvm_cpu_exec is at two addresses.
  size_t functions = 0, locations = 0;
  for (const Field& f : fields(encode_pprof(crafted()))) {
    functions += f.number == 5;
    locations += f.number == 4;
  }
  EXPECT_EQ(locations, 11u);
  EXPECT_EQ(functions, 7u);
}

TEST_F(GoPprof, ReadsEveryValueLabelAndMapping) {
  const std::string raw = pprof("-raw", crafted());
  ASSERT_NE(raw.find("samples/count cpu/nanoseconds\n"), std::string::npos) << raw;
  int64_t samples = 0, nanos = 0;
  std::istringstream lines(
      raw.substr(raw.find("Samples:"), raw.find("Locations") - raw.find("Samples:")));
  for (std::string line; std::getline(lines, line);) {
    long long count, ns;
    if (std::sscanf(line.c_str(), " %lld %lld:", &count, &ns) == 2) samples += count, nanos += ns;
  }
  EXPECT_EQ(samples, 22);
  EXPECT_EQ(nanos, 22 * kPeriod);
  for (const char* mode :
       {"Host Kernel", "Host User", "Guest Kernel", "Guest User", "Hypervisor"}) {
    EXPECT_NE(raw.find("execution_mode:[" + std::string(mode) + "]"), std::string::npos) << mode;
  }
  EXPECT_NE(raw.find("domain:[web-1]"), std::string::npos);
  EXPECT_NE(raw.find("uuid:[00000000-0000-0000-0000-000000000002]"), std::string::npos);
  EXPECT_NE(raw.find("thread:[emulator]"), std::string::npos);
  EXPECT_NE(raw.find("vcpu:[0 vcpu]"), std::string::npos) << "vcpu 0 must not be dropped";
  EXPECT_NE(mapping_line_of(raw, "native_safe_halt").find("[guest_kernel]"), std::string::npos);
  EXPECT_NE(mapping_line_of(raw, "vmx_vcpu_run").find("[kernel.kallsyms]"), std::string::npos);
  EXPECT_NE(mapping_line_of(raw, "main_loop_wait")
                .find("/usr/bin/qemu-system-x86_64 4c1f3e2a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e"),
            std::string::npos);
  EXPECT_NE(raw.find("Comment: guest kallsyms of db-2 did not match its kernel"),
            std::string::npos);
  EXPECT_NE(raw.find("Period: 10000000"), std::string::npos);
  EXPECT_NE(raw.find("Duration: 30s"), std::string::npos);
}

TEST_F(GoPprof, TopListsTheNamedFunctions) {
  const std::string top = pprof("-top -nodecount=5", crafted());
  EXPECT_NE(top.find("Total samples = 220ms"), std::string::npos) << top;
  EXPECT_NE(top.find("70ms 31.82% 31.82%       70ms 31.82%  native_safe_halt"), std::string::npos)
      << top;
  EXPECT_NE(top.find("vmx_vcpu_run"), std::string::npos);
  EXPECT_NE(top.find("main_loop_wait"), std::string::npos);
}

// An event sampled every N events has no CPU time per sample: pprof then shows samples first.
TEST_F(GoPprof, ADefaultSampleTypeOfSamplesIsWhatPprofShows) {
  Profile p = crafted();
  p.default_sample_type = "samples";
  const std::string top = pprof("-top -nodecount=1", p);
  EXPECT_NE(top.find("Type: samples"), std::string::npos) << top;
  EXPECT_NE(top.find("Total samples = 22"), std::string::npos) << top;
}

// The whole -raw text against the golden file. After a deliberate change of the encoding (or of
// crafted()), regenerate it with
//   KVMPROF_UPDATE_GOLDEN=1 ./kvmprof_unit_tests --gtest_filter=GoPprof.RawMatchesGolden
// and review the diff of tests/fixtures/profiles/crafted.raw.
TEST_F(GoPprof, RawMatchesGolden) {
  const fs::path golden = fs::path(KVMPROF_SOURCE_DIR) / "tests/fixtures/profiles/crafted.raw";
  const std::string raw = pprof("-raw", crafted());
  if (std::getenv("KVMPROF_UPDATE_GOLDEN")) {
    fs::create_directories(golden.parent_path());
    std::ofstream(golden) << raw;
  }
  ASSERT_TRUE(fs::exists(golden)) << golden << " is missing: see above how to write it";
  std::stringstream expected;
  expected << std::ifstream(golden).rdbuf();
  EXPECT_EQ(raw, expected.str());
}
