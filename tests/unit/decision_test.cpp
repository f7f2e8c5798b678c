// Decision tables: CPU fixture x kernel personality x spec x requested semantics => what is
// opened, what it counts, and the status. The fixtures are under tests/fixtures/cpus (see
// generate.py for where their data comes from); the personalities in tests/support.
#include "policy/decision.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "agent/system/host_probe.h"
#include "agent/system/open_ladder.h"
#include "tests/support/fake_kernel.h"
#include "tests/support/fixtures.h"
#include "tests/support/opened.h"

using namespace kvmprof;
using namespace kvmprof::testing;

namespace {

const QuirkTable& quirks() {
  return builtin_quirks();
}


EventSpec spec(const std::string& text) { return std::get<EventSpec>(parse_event_spec(text)); }

struct Row {
  std::string fixture;
  FakeKernel (*kernel)();
  std::string spec;
  GuestMode guest;
  DecisionStatus status;      // after opening
  std::string semantics;      // after opening; "" when not opened
  std::vector<std::string> counters;  // "mode precise exclude_guest exclude_host" per opened counter
  std::string reason_has;     // a quirk id or phrase the reason must name
};

std::string name(const Row& r) { return r.fixture + " " + r.spec + " guest=" + std::string(to_string(r.guest)); }

const std::vector<Row>& rows() {
  using enum DecisionStatus;
  static const std::vector<Row> table{
      // The seeds: cycles:p with no G/H on an affected Intel host opens host-only and says why;
      // cycles:pG explicit is refused with the quirk named.
      {"intel-skylake-client-old-ucode", linux_6_1_intel, "cycles:p", GuestMode::kAuto, kDegraded, "host",
       {"host p1 eg1 eh0"}, "pebs-isolation-skylake-s3"},
      {"intel-skylake-client-new-ucode", linux_6_1_intel, "cycles:p", GuestMode::kAuto, kDegraded, "host",
       {"host p1 eg1 eh0"}, "intel-pebs-host-only"},
      {"intel-skylake-client-new-ucode", linux_6_1_intel, "cycles:pG", GuestMode::kAuto, kRefused, "", {},
       "precise-exclude-host-hang"},
      {"intel-skylake-client-new-ucode", linux_6_1_intel, "cycles:p", GuestMode::kInclude, kRefused, "", {},
       "intel-pebs-host-only"},
      {"intel-skylake-client-new-ucode", linux_6_1_intel, "cycles:p", GuestMode::kSplit, kRefused, "", {},
       "precise-exclude-host-hang"},
      {"intel-skylake-client-new-ucode", linux_6_1_intel, "cycles:p", GuestMode::kExclude, kOk, "host",
       {"host p1 eg1 eh0"}, ""},
      {"intel-skylake-client-new-ucode", linux_6_1_intel, "cycles", GuestMode::kAuto, kOk, "split",
       {"host p0 eg1 eh0", "guest p0 eg0 eh1"}, ""},
      {"intel-skylake-client-new-ucode", linux_6_1_intel, "instructions", GuestMode::kInclude, kOk, "all",
       {"all p0 eg0 eh0"}, ""},
      {"intel-skylake-client-new-ucode", linux_6_1_intel, "cycles:H", GuestMode::kSplit, kOk, "host",
       {"host p0 eg1 eh0"}, ""},
      {"intel-skylake-sp-old-ucode", linux_6_1_intel, "cycles:pp", GuestMode::kExclude, kDegraded, "host",
       {"host p2 eg1 eh0"}, "pebs-isolation-skylake-x-s3"},
      {"intel-skylake-sp-new-ucode", linux_6_1_intel, "cycles:pp", GuestMode::kExclude, kOk, "host",
       {"host p2 eg1 eh0"}, ""},
      {"intel-icelake-sp", linux_6_1_intel, "cycles:P", GuestMode::kAuto, kDegraded, "host", {"host p3 eg1 eh0"},
       "intel-pebs-host-only"},
      {"intel-sapphirerapids", linux_6_1_intel, "cycles:p", GuestMode::kExclude, kDegraded, "host",
       {"host p1 eg1 eh0"}, "host-pebs-disables-guest-pebs"},
      {"intel-sandybridge", linux_6_1_intel, "cycles:ppp", GuestMode::kAuto, kRefused, "", {}, "at most 2"},
      {"intel-sandybridge", linux_6_1_intel, "cycles:P", GuestMode::kAuto, kDegraded, "host", {"host p2 eg1 eh0"},
       "pebs-isolation-pre-haswell"},
      {"intel-haswell", linux_6_1_intel, "cpu/event=0x3c,umask=0x0/", GuestMode::kSplit, kOk, "split",
       {"host p0 eg1 eh0", "guest p0 eg0 eh1"}, ""},
      {"intel-broadwell-x", linux_6_1_intel, "branch-misses:u", GuestMode::kAuto, kOk, "split",
       {"host p0 eg1 eh0", "guest p0 eg0 eh1"}, ""},
      // Old kernels, through the open ladder.
      {"intel-westmere-ep", linux_3_1, "cycles", GuestMode::kAuto, kDegraded, "all", {"all p0 eg0 eh0"},
       "kernel-before-exclude-bits"},
      {"intel-westmere-ep", linux_3_1, "cycles", GuestMode::kSplit, kRefused, "", {}, "kernel-before-exclude-bits"},
      {"intel-westmere-ep", linux_3_1, "cycles:p", GuestMode::kAuto, kRefused, "", {}, "corrupted guest memory"},
      {"intel-westmere-ep", linux_3_6, "cycles:p", GuestMode::kAuto, kDegraded, "host", {"host p1 eg1 eh0"},
       "intel-pebs-host-only"},
      {"intel-westmere-ep", linux_3_6, "cycles:P", GuestMode::kExclude, kDegraded, "host", {"host p2 eg1 eh0"},
       "pebs-isolation-pre-haswell"},
      {"intel-sapphirerapids-mediated-vpmu", linux_3_1, "cycles", GuestMode::kAuto, kRefused, "", {},
       "kernel-before-exclude-bits"},
      // Uncore.
      {"intel-cascadelake", linux_6_1_intel, "uncore_imc_0/event=0x04,umask=0x03/", GuestMode::kAuto, kDegraded,
       "all", {"all p0 eg0 eh0"}, "uncore-rejects-exclude"},
      {"intel-cascadelake", linux_6_1_intel, "uncore_imc_0/event=0x04,umask=0x03/", GuestMode::kSplit, kRefused,
       "", {}, "uncore-rejects-exclude"},
      {"intel-cascadelake", linux_6_1_intel, "uncore_imc_0/event=0x04,bogus=1/", GuestMode::kAuto, kRefused, "",
       {}, "has no term 'bogus'"},
      {"intel-cascadelake", linux_6_1_intel, "uncore_imc_9/event=0x04/", GuestMode::kAuto, kUnsupported, "", {},
       "no PMU named uncore_imc_9"},
      // AMD.
      {"amd-zen1-epyc-7601", linux_6_1_amd_ibs, "cycles:p", GuestMode::kAuto, kDegraded, "all",
       {"all p1 eg0 eh0"}, "amd-ibs-rejects-exclude"},
      {"amd-zen1-epyc-7601", linux_6_1_amd_ibs, "cycles:pH", GuestMode::kAuto, kRefused, "", {},
       "amd-ibs-rejects-exclude"},
      {"amd-zen1-epyc-7601", linux_6_1_amd_ibs, "cycles:ppp", GuestMode::kAuto, kRefused, "", {}, "at most 2"},
      {"amd-zen1-epyc-7601", linux_6_1_amd_ibs, "cycles", GuestMode::kAuto, kOk, "split",
       {"host p0 eg1 eh0", "guest p0 eg0 eh1"}, ""},
      {"amd-zen2-epyc-7702-no-svm", linux_6_1_amd_ibs, "cycles", GuestMode::kAuto, kDegraded, "host",
       {"host p0 eg1 eh0"}, "amd-guest-bits-need-svm"},
      {"amd-zen2-epyc-7702-no-svm", linux_6_1_amd_ibs, "cycles", GuestMode::kSplit, kRefused, "", {},
       "amd-guest-bits-need-svm"},
      {"amd-zen3-epyc-7763-sev", linux_6_1_amd_ibs, "instructions", GuestMode::kAuto, kDegraded, "split",
       {"host p0 eg1 eh0", "guest p0 eg0 eh1"}, "amd-sev-ignores-guest-bits"},
      {"amd-zen4-no-ibs", linux_6_1_amd_ibs, "cycles:p", GuestMode::kAuto, kUnsupported, "", {}, "no IBS"},
      // Mediated vPMU: guest-inclusive core events would stop VMs from starting.
      {"intel-sapphirerapids-mediated-vpmu", linux_7_mediated, "cycles", GuestMode::kAuto, kDegraded, "host",
       {"host p0 eg1 eh0"}, "mediated-vpmu-forbids-guest-inclusive"},
      {"intel-sapphirerapids-mediated-vpmu", linux_7_mediated, "cycles", GuestMode::kInclude, kRefused, "", {},
       "mediated-vpmu-forbids-guest-inclusive"},
      {"intel-sapphirerapids-mediated-vpmu", linux_7_mediated, "cycles:G", GuestMode::kAuto, kRefused, "", {},
       "mediated-vpmu-forbids-guest-inclusive"},
      {"intel-sapphirerapids", linux_6_1_intel, "cycles", GuestMode::kAuto, kOk, "split",
       {"host p0 eg1 eh0", "guest p0 eg0 eh1"}, ""},
      // Hybrid: one counter per core type.
      {"intel-alderlake-hybrid", linux_6_1_intel_hybrid, "cycles", GuestMode::kExclude, kOk, "host",
       {"host p0 eg1 eh0", "host p0 eg1 eh0"}, ""},
      // This machine: no hardware PMU.
      {"this-machine", no_hardware_pmu, "cycles", GuestMode::kAuto, kUnsupported, "", {}, "no hardware PMU"},
      {"this-machine", no_hardware_pmu, "task-clock", GuestMode::kAuto, kOk, "all", {"all p0 eg0 eh0"}, ""},
      {"this-machine", no_hardware_pmu, "kvm:kvm_exit", GuestMode::kSplit, kRefused, "", {},
       "software-events-have-no-guest-split"},
      // A decision for a PMU host met by a kernel without one (a fixture on the wrong host).
      {"intel-skylake-client-new-ucode", no_hardware_pmu, "cycles", GuestMode::kExclude, kUnsupported, "", {},
       "ENOENT"},
  };
  return table;
}

}  // namespace

TEST(QuirkTable, ShippedTableLoadsAndEveryEntryCitesASource) {
  for (const auto& q : quirks().quirks()) EXPECT_FALSE(q.source.empty()) << q.id;
  EXPECT_GE(quirks().quirks().size(), 20u);
}

TEST(QuirkTable, BadTablesGiveFileLineColumn) {
  auto err = [](const char* yaml) { return std::get<ConfigError>(parse_quirk_table(yaml, "q.yaml")).format(); };
  EXPECT_EQ(err("version: 1\nquirks:\n  - {id: a, effect: nope, match: {}, description: d, source: s}\n"),
            "q.yaml:3:21: unknown effect 'nope'");
  EXPECT_EQ(err("version: 1\nquirks:\n  - {id: a, effect: mediated_vpmu, match: {vendr: Intel}, description: d, source: s}\n"),
            "q.yaml:3:44: unknown key 'vendr' in match");
  EXPECT_EQ(err("version: 2\nquirks: []\n"), "q.yaml:1:10: unsupported quirk table version");
}

// Found by the quirk_table fuzz target: entries that were accepted and silently never applied,
// or applied to every host.
TEST(QuirkTable, MatchesThatCannotMeanWhatTheySayAreRefused) {
  auto err = [](const std::string& match, const std::string& source = "s") {
    std::string yaml = "version: 1\nquirks:\n  - {id: a, effect: mediated_vpmu, match: " + match + ", description: d, source: " +
                       source + "}\n";
    return std::get<ConfigError>(parse_quirk_table(yaml, "q.yaml")).message;
  };
  EXPECT_EQ(err("{models: 0x55}"), "'models' must be a list");           // was: every model
  EXPECT_EQ(err("{flags: sev}"), "'flags' must be a list");              // was: every host
  EXPECT_EQ(err("{family: 0x100000006}"), "'family' is out of range");   // was: family 6
  EXPECT_EQ(err("{stepping: [5, 3]}"), "'stepping' must be [min, max] with min <= max: it never applies");
  EXPECT_EQ(err("{microcode_below: 0}"), "'microcode_below: 0' never applies");
  EXPECT_EQ(err("{}", "''"), "'source' must be a non-empty string");
}

TEST(DecisionTable, EveryRowOpensWhatItShould) {
  for (const Row& row : rows()) {
    SCOPED_TRACE(name(row));
    HostModel host = fixture(row.fixture);
    ASSERT_NE(host.cpu.vendor_id, "") << "fixture missing";
    FakeKernel kernel = row.kernel();
    Decision d = decide(spec(row.spec), row.guest, host, quirks());
    OpenedDecision opened = open_decision(kernel, d, 1234, -1, -1, host);
    EXPECT_EQ(to_string(opened.status), to_string(row.status)) << d.reason << " / " << opened.reason;
    EXPECT_EQ(opened.semantics, row.semantics);
    std::vector<std::string> got;
    for (const auto& c : opened.counters) got.push_back(describe(c));
    EXPECT_EQ(got, row.counters);
    std::string why = d.reason + " | " + opened.reason;
    EXPECT_NE(why.find(row.reason_has), std::string::npos) << why;
  }
}

TEST(DecisionTable, HybridEventsCarryEachCorePmusType) {
  HostModel host = fixture("intel-alderlake-hybrid");
  Decision d = decide(spec("cycles"), GuestMode::kSplit, host, quirks());
  ASSERT_EQ(d.counters.size(), 4u);
  std::set<uint64_t> types;
  for (const auto& c : d.counters) types.insert(c.attr.config >> PERF_PMU_TYPE_SHIFT);
  EXPECT_EQ(types, (std::set<uint64_t>{4, 10}));
  EXPECT_NE(d.reason.find("hybrid-per-pmu-events"), std::string::npos);
}

TEST(DecisionTable, PmuTermsAreEncodedThroughSysfsFormat) {
  HostModel host = fixture("amd-zen1-epyc-7601");
  Decision d = decide(spec("cpu/event=0x1c0,umask=0x2/"), GuestMode::kExclude, host, quirks());
  ASSERT_EQ(d.counters.size(), 1u);
  // AMD's event field is config:0-7,32-35: 0x1c0 puts 0xc0 low and 0x1 at bit 32.
  EXPECT_EQ(d.counters[0].attr.config, 0x1'0000'02c0ull);
  EXPECT_EQ(d.counters[0].attr.type, 4u);
}

// Over every fixture, personality, spec and semantics: nothing opened is ever precise with
// exclude_host, guest-inclusive on a core PMU under the mediated vPMU, or precise with the
// guest included on a kernel without the PEBS-disable-on-entry fix (3.1 here).
TEST(DecisionProperty, NeverOpensAnUnsafeCombination) {
  const std::vector<std::string> specs{"cycles", "cycles:p", "cycles:pp", "cycles:ppp", "cycles:P", "cycles:G",
                                       "cycles:H", "cycles:pG", "cycles:pH", "cycles:GH", "cycles:pGH",
                                       "instructions:u", "instructions:kpp", "r01c2:p", "LLC-load-misses",
                                       "cpu/event=0x3c/p", "task-clock", "kvm:kvm_exit"};
  const std::vector<GuestMode> modes{GuestMode::kAuto, GuestMode::kInclude, GuestMode::kExclude, GuestMode::kSplit};
  size_t opened_total = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(KVMPROF_SOURCE_DIR) + "/tests/fixtures/cpus")) {
    if (!entry.is_directory()) continue;
    HostModel host = fixture(entry.path().filename());
    bool mediated = quirks().find("mediated_vpmu", host) != nullptr;
    for (FakeKernel& kernel : all_personalities()) {
      for (const auto& s : specs) {
        for (GuestMode mode : modes) {
          Decision d = decide(spec(s), mode, host, quirks());
          OpenedDecision o = open_decision(kernel, d, 1, -1, -1, host);
          for (const auto& c : o.counters) {
            ++opened_total;
            SCOPED_TRACE(entry.path().filename().string() + " " + kernel.name() + " " + s + " " + std::string(to_string(mode)));
            EXPECT_FALSE(c.attr.precise_ip > 0 && c.attr.exclude_host);
            bool core = c.attr.type != PERF_TYPE_SOFTWARE && c.attr.type != PERF_TYPE_TRACEPOINT;
            EXPECT_FALSE(mediated && core && !c.attr.exclude_guest);
            bool intel = host.cpu.vendor == Vendor::kIntel;
            EXPECT_FALSE(kernel.name() == "linux-3.1" && intel && c.attr.precise_ip > 0 && !c.attr.exclude_guest);
            EXPECT_FALSE(intel && c.attr.precise_ip > 0 && !c.attr.exclude_guest);
          }
        }
      }
    }
  }
  EXPECT_GT(opened_total, 500u);
}
