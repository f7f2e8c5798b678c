// Sampling: the `sampling:` block, and its decisions on every CPU fixture and kernel
// personality. What is opened is what the fake kernel accepted through the open ladder.
#include "policy/sampling_decision.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "agent/system/open_ladder.h"
#include "policy/host_check.h"
#include "tests/support/fake_kernel.h"
#include "tests/support/fixtures.h"
#include "tests/support/opened.h"

using namespace kvmprof;
using namespace kvmprof::testing;

namespace {

SamplingConfig sampling(const std::string& spec, GuestMode guest = GuestMode::kAuto) {
  SamplingConfig s;
  s.event = PolicyEvent{std::get<EventSpec>(parse_event_spec(spec)), guest, {3, 5}};
  return s;
}

AgentConfig load(const std::string& yaml) { return std::get<AgentConfig>(parse_agent_config(yaml, "s.yaml")); }

std::vector<std::string> errors(const std::string& yaml) {
  std::vector<std::string> out;
  auto result = parse_agent_config(yaml, "s.yaml");
  for (const auto& e : std::get<std::vector<ConfigError>>(result)) out.push_back(e.format());
  return out;
}

struct Row {
  std::string fixture;
  FakeKernel (*kernel)();
  std::string spec;
  GuestMode guest;
  DecisionStatus status;  // after opening
  std::vector<std::string> samplers;  // "mode precise exclude_guest exclude_host" per opened event
  std::string reason_has;
};

}  // namespace

TEST(SamplingConfig, DefaultsToCpuClockAt99HzOnEveryThreadWithKernelStacks) {
  auto config = load("version: 1\ndefault:\n  sampling: {}\n");
  ASSERT_TRUE(config.default_policy.sampling);
  const SamplingConfig& s = *config.default_policy.sampling;
  EXPECT_EQ(s.event.spec.text, "cpu-clock");
  EXPECT_EQ(s.rate_hz(), 99u);
  EXPECT_EQ(s.threads, SampleThreads::kAll);
  EXPECT_EQ(s.callchain, Callchain::kKernel);
  EXPECT_EQ(s.data_pages(), 8u);  // a quarter second of 1 KiB samples at 99 Hz
  EXPECT_EQ(config.default_policy.events.size(), 6u);  // sampling alone keeps the default events
  EXPECT_FALSE(load("version: 1\n").default_policy.sampling);  // off unless given
}

TEST(SamplingConfig, ReadsEveryKey) {
  auto config = load(
      "version: 1\nevents: [task-clock]\nlimits: {max_sampled_threads: 64, max_ring_bytes: 1048576}\n"
      "policies:\n  - name: db\n    match: {domain: 'db-*'}\n    priority: 5\n"
      "    sampling: {event: cycles, guest: exclude, precise: 2, period: 100000, threads: vcpu, "
      "callchain: kernel+user, buffer: 256KiB, guest_kallsyms: /var/lib/kvmprof/db.kallsyms}\n"
      "profiles: {window: 2m, max_samples: 5000, max_stacks: 800, symbol_cache: 16MiB}\n");
  const SamplingConfig& s = *config.policies.at(0).sampling;
  EXPECT_EQ(s.guest_kallsyms, "/var/lib/kvmprof/db.kallsyms");
  EXPECT_EQ(config.profiles.window, std::chrono::seconds(120));
  EXPECT_EQ(config.profiles.max_samples, 5000u);
  EXPECT_EQ(config.profiles.max_stacks, 800u);
  EXPECT_EQ(config.profiles.symbol_cache_bytes, 16u << 20);
  EXPECT_EQ(s.event.spec.text, "cycles:pp");
  EXPECT_EQ(s.event.guest, GuestMode::kExclude);
  EXPECT_EQ(s.period, 100000u);
  EXPECT_EQ(s.rate_hz(), std::nullopt);  // a cycles period says nothing about time
  EXPECT_EQ(s.threads, SampleThreads::kVcpu);
  EXPECT_EQ(s.callchain, Callchain::kKernelUser);
  EXPECT_EQ(s.data_pages(), 64u);
  EXPECT_EQ(config.limits.max_sampled_threads, 64u);
  EXPECT_EQ(config.limits.max_ring_bytes, 1048576u);
  EXPECT_EQ(load("version: 1\ndefault: {sampling: {frequency: 999}}\n").default_policy.sampling->data_pages(), 64u);
  EXPECT_EQ(load("version: 1\ndefault: {sampling: {buffer: 16}}\n").default_policy.sampling->data_pages(), 16u);
  EXPECT_EQ(load("version: 1\ndefault: {sampling: {period: 1000000}}\n").default_policy.sampling->rate_hz(), 1000u);
}

TEST(SamplingConfig, EveryProblemHasItsLineAndColumn) {
  EXPECT_EQ(errors("version: 1\ndefault:\n  sampling: {guest: split}\n"),
            std::vector<std::string>{"s.yaml:3:21: sampling has no 'split': every sample says itself whether it was "
                                     "taken in the guest (guest_kernel, guest_user) or on the host; use auto, include "
                                     "or exclude"});
  EXPECT_EQ(errors("version: 1\ndefault:\n  sampling: {frequency: 99, period: 10}\n"),
            std::vector<std::string>{"s.yaml:3:37: give 'frequency' or 'period', not both"});
  EXPECT_EQ(errors("version: 1\ndefault:\n  sampling: {buffer: 3}\n"),
            std::vector<std::string>{"s.yaml:3:22: 'buffer' must be a power of two of 4 KiB pages from 1 to 1024, "
                                     "as pages (16) or bytes (64KiB, 1MiB)"});
  EXPECT_EQ(errors("version: 1\ndefault:\n  sampling: {buffer: 6KiB}\n").size(), 1u);
  EXPECT_EQ(errors("version: 1\ndefault:\n  sampling: {frequency: 0}\n"),
            std::vector<std::string>{"s.yaml:3:25: 'frequency' must be a whole number from 1 to 100000"});
  EXPECT_EQ(errors("version: 1\ndefault:\n  sampling: {threads: io, callchain: user}\n"),
            (std::vector<std::string>{"s.yaml:3:23: 'threads' must be vcpu or all",
                                      "s.yaml:3:38: 'callchain' must be none, kernel or kernel+user"}));
  EXPECT_EQ(errors("version: 1\ndefault:\n  sampling: {event: 'cycles:q'}\n"),
            std::vector<std::string>{"s.yaml:3:29: unknown modifier 'q' (known: u k h G H I p P)"});
  EXPECT_EQ(errors("version: 1\ndefault:\n  sampling: {evnt: cycles}\n").size(), 1u);
  EXPECT_EQ(errors("version: 1\ndefault:\n  sampling: {precise: 1}\n"),
            std::vector<std::string>{"s.yaml:3:13: precise sampling needs a hardware PMU event; cpu-clock:p is a software "
                                     "event or tracepoint (drop 'precise' or the p modifiers)"});
  EXPECT_EQ(errors("version: 1\nlimits: {max_ring_bytes: -1}\n").size(), 1u);
}

TEST(SamplingConfig, AnExplicitAskTheHostRefusesIsAConfigErrorNamingTheQuirk) {
  AgentConfig config = load("version: 1\ndefault:\n  sampling: {event: 'cycles:pG'}\n");
  auto refused = refusals_on_host(config, "s.yaml", fixture("intel-skylake-client-new-ucode"), builtin_quirks());
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_NE(refused[0].format().find("s.yaml:3:21: policy 'default': sampling cycles:pG"), std::string::npos)
      << refused[0].format();
  EXPECT_NE(refused[0].message.find("precise-exclude-host-hang"), std::string::npos);
  config = load("version: 1\ndefault:\n  sampling: {event: cycles, precise: 1, guest: include}\n");
  refused = refusals_on_host(config, "s.yaml", fixture("intel-skylake-client-new-ucode"), builtin_quirks());
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_NE(refused[0].message.find("intel-pebs-host-only"), std::string::npos);
  // auto is never an error: it samples the host only and says why.
  config = load("version: 1\ndefault:\n  sampling: {event: 'cycles:p'}\n");
  EXPECT_TRUE(refusals_on_host(config, "s.yaml", fixture("intel-skylake-client-new-ucode"), builtin_quirks()).empty());
}

TEST(SamplingDecision, EveryRowOpensWhatItShould) {
  using enum DecisionStatus;
  const std::vector<Row> rows{
      // The seeds: cycles:p with no G/H on Intel samples the host only and says why.
      {"intel-skylake-client-new-ucode", linux_6_1_intel, "cycles:p", GuestMode::kAuto, kDegraded, {"host p1 eg1 eh0"},
       "intel-pebs-host-only"},
      {"intel-skylake-client-new-ucode", linux_6_1_intel, "cycles:pG", GuestMode::kAuto, kRefused, {}, "precise-exclude-host-hang"},
      {"intel-skylake-client-new-ucode", linux_6_1_intel, "cycles:p", GuestMode::kInclude, kRefused, {}, "intel-pebs-host-only"},
      // A non-precise core event samples host and guest with one event; misc tells them apart.
      {"intel-skylake-client-new-ucode", linux_6_1_intel, "cycles", GuestMode::kAuto, kOk, {"all p0 eg0 eh0"}, "misc bits"},
      {"intel-skylake-client-new-ucode", linux_6_1_intel, "cycles", GuestMode::kExclude, kOk, {"host p0 eg1 eh0"}, ""},
      {"intel-skylake-client-new-ucode", linux_6_1_intel, "cycles:G", GuestMode::kAuto, kOk, {"guest p0 eg0 eh1"}, ""},
      {"intel-skylake-client-new-ucode", linux_6_1_intel, "cycles", GuestMode::kSplit, kRefused, {}, "no split"},
      // A kernel that refuses precise without exclude_guest, and one before use_clockid and
      // PERF_SAMPLE_IDENTIFIER: the ladder steps, the exclude bits stay.
      {"intel-westmere-ep", linux_3_6, "cycles:p", GuestMode::kAuto, kDegraded, {"host p1 eg1 eh0"}, "intel-pebs-host-only"},
      {"intel-westmere-ep", linux_3_6, "cycles", GuestMode::kExclude, kOk, {"host p0 eg1 eh0"}, ""},
      {"intel-westmere-ep", linux_3_1, "cycles", GuestMode::kAuto, kOk, {"all p0 eg0 eh0"}, "misc bits"},
      {"intel-westmere-ep", linux_3_1, "cycles:p", GuestMode::kAuto, kRefused, {}, "corrupted guest memory"},
      // AMD IBS rejects exclude bits: all, or refused when asked to exclude.
      {"amd-zen1-epyc-7601", linux_6_1_amd_ibs, "cycles:p", GuestMode::kAuto, kDegraded, {"all p1 eg0 eh0"}, "amd-ibs-rejects-exclude"},
      {"amd-zen1-epyc-7601", linux_6_1_amd_ibs, "cycles:p", GuestMode::kExclude, kRefused, {}, "amd-ibs-rejects-exclude"},
      {"amd-zen1-epyc-7601", linux_6_1_amd_ibs, "cycles", GuestMode::kAuto, kOk, {"all p0 eg0 eh0"}, ""},
      // Mediated vPMU: no guest-inclusive core sampling event is opened.
      {"intel-sapphirerapids-mediated-vpmu", linux_7_mediated, "cycles", GuestMode::kAuto, kDegraded, {"host p0 eg1 eh0"},
       "mediated-vpmu-forbids-guest-inclusive"},
      {"intel-sapphirerapids-mediated-vpmu", linux_7_mediated, "cycles", GuestMode::kInclude, kRefused, {},
       "mediated-vpmu-forbids-guest-inclusive"},
      // Hybrid: one sampling event per core type.
      {"intel-alderlake-hybrid", linux_6_1_intel_hybrid, "cycles", GuestMode::kAuto, kOk, {"all p0 eg0 eh0", "all p0 eg0 eh0"}, ""},
      // Software events: exclude_guest only changes the tagging, exclude_host does nothing.
      {"this-machine", no_hardware_pmu, "cpu-clock", GuestMode::kAuto, kOk, {"all p0 eg0 eh0"}, "exclude_host has no effect"},
      {"this-machine", no_hardware_pmu, "cpu-clock", GuestMode::kExclude, kDegraded, {"host p0 eg1 eh0"},
       "only makes kernels since 6.13 tag"},
      {"this-machine", no_hardware_pmu, "cpu-clock:G", GuestMode::kAuto, kRefused, {}, "exclude_host has no effect"},
      {"this-machine", no_hardware_pmu, "cpu-clock:p", GuestMode::kAuto, kUnsupported, {}, "hardware PMU event"},
      {"this-machine", no_hardware_pmu, "cycles", GuestMode::kAuto, kUnsupported, {}, "no hardware PMU"},
      {"intel-westmere-ep", linux_3_1, "task-clock", GuestMode::kAuto, kOk, {"all p0 eg0 eh0"}, ""},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.fixture + " " + row.spec + " guest=" + std::string(to_string(row.guest)));
    HostModel host = fixture(row.fixture);
    FakeKernel kernel = row.kernel();
    Decision d = decide_sampling(sampling(row.spec, row.guest), host, builtin_quirks());
    OpenedDecision opened = open_decision(kernel, d, 1234, -1, -1, host);
    EXPECT_EQ(to_string(opened.status), to_string(row.status)) << d.reason << " / " << opened.reason;
    std::vector<std::string> got;
    for (const auto& c : opened.counters) {
      got.push_back(describe(c));
      EXPECT_TRUE(c.attr.sample_id_all);
      EXPECT_NE(c.attr.sample_type & (PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_ID), 0u);
    }
    EXPECT_EQ(got, row.samplers);
    std::string why = d.reason + " | " + opened.reason;
    EXPECT_NE(why.find(row.reason_has), std::string::npos) << why;
  }
}

TEST(SamplingDecision, AttrsFollowTheBlock) {
  HostModel host = fixture("this-machine");
  SamplingConfig s = sampling("cpu-clock");
  Decision d = decide_sampling(s, host, builtin_quirks());
  ASSERT_EQ(d.counters.size(), 1u);
  const perf_event_attr& a = d.counters[0].attr;
  EXPECT_EQ(a.sample_type, uint64_t{PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME |
                                    PERF_SAMPLE_PERIOD | PERF_SAMPLE_CALLCHAIN});
  EXPECT_TRUE(a.freq);
  EXPECT_EQ(a.sample_freq, 99u);
  EXPECT_TRUE(a.exclude_callchain_user);
  EXPECT_TRUE(a.use_clockid);
  EXPECT_EQ(a.clockid, CLOCK_MONOTONIC);
  EXPECT_TRUE(a.watermark);
  EXPECT_EQ(a.wakeup_watermark, 8u * 4096 / 2);
  s.period = 250000;
  s.callchain = Callchain::kNone;
  const perf_event_attr b = decide_sampling(s, host, builtin_quirks()).counters.at(0).attr;
  EXPECT_FALSE(b.freq);
  EXPECT_EQ(b.sample_period, 250000u);
  EXPECT_EQ(b.sample_type & PERF_SAMPLE_CALLCHAIN, 0u);
  // A tracepoint samples every hit unless told otherwise.
  const perf_event_attr t = decide_sampling(sampling("kvm:kvm_pio"), host, builtin_quirks()).counters.at(0).attr;
  EXPECT_FALSE(t.freq);
  EXPECT_EQ(t.sample_period, 1u);
}

TEST(SamplingDecision, OldKernelsGetPerfClockAndSampleIdThroughTheLadder) {
  FakeKernel kernel = linux_3_6();
  HostModel host = fixture("intel-westmere-ep");
  Decision d = decide_sampling(sampling("cycles", GuestMode::kExclude), host, builtin_quirks());
  OpenedDecision opened = open_decision(kernel, d, 1, -1, -1, host);
  ASSERT_EQ(opened.counters.size(), 1u);
  EXPECT_FALSE(opened.counters[0].attr.use_clockid);
  EXPECT_EQ(opened.counters[0].attr.sample_type & PERF_SAMPLE_IDENTIFIER, 0u);
  EXPECT_NE(opened.counters[0].attr.sample_type & PERF_SAMPLE_ID, 0u);
  std::vector<std::string> steps;
  for (const auto& s : opened.steps) steps.push_back(s.code);
  EXPECT_EQ(steps, (std::vector<std::string>{"no_clockid", "no_sample_identifier"}));
}

// Over every fixture, personality, spec and guest setting: no opened sampling event is precise
// with exclude_host, precise with the guest on Intel, or guest-inclusive on a core PMU under
// the mediated vPMU.
TEST(SamplingDecisionProperty, NeverOpensAnUnsafeSamplingEvent) {
  const std::vector<std::string> specs{"cycles", "cycles:p", "cycles:pp", "cycles:P", "cycles:G", "cycles:H", "cycles:pG",
                                       "cycles:pH", "cycles:GH", "instructions:u", "r01c2:p", "cpu/event=0x3c/p",
                                       "cpu-clock", "cpu-clock:G", "task-clock", "kvm:kvm_exit"};
  const std::vector<GuestMode> modes{GuestMode::kAuto, GuestMode::kInclude, GuestMode::kExclude};
  size_t opened_total = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(KVMPROF_SOURCE_DIR) + "/tests/fixtures/cpus")) {
    if (!entry.is_directory()) continue;
    HostModel host = fixture(entry.path().filename());
    bool mediated = builtin_quirks().find("mediated_vpmu", host) != nullptr;
    bool intel = host.cpu.vendor == Vendor::kIntel;
    for (FakeKernel& kernel : all_personalities()) {
      for (const auto& spec : specs) {
        for (GuestMode mode : modes) {
          SamplingConfig s = sampling(spec, std::get<EventSpec>(parse_event_spec(spec)).mods.guest_host_given ? GuestMode::kAuto : mode);
          OpenedDecision o = open_decision(kernel, decide_sampling(s, host, builtin_quirks()), 1, -1, -1, host);
          for (const auto& c : o.counters) {
            ++opened_total;
            SCOPED_TRACE(entry.path().filename().string() + " " + kernel.name() + " " + spec + " " + std::string(to_string(mode)));
            EXPECT_FALSE(c.attr.precise_ip > 0 && c.attr.exclude_host);
            EXPECT_FALSE(intel && c.attr.precise_ip > 0 && !c.attr.exclude_guest);
            bool core = c.attr.type != PERF_TYPE_SOFTWARE && c.attr.type != PERF_TYPE_TRACEPOINT;
            EXPECT_FALSE(mediated && core && !c.attr.exclude_guest);
            EXPECT_TRUE(c.attr.freq || c.attr.sample_period > 0);
          }
        }
      }
    }
  }
  EXPECT_GT(opened_total, 500u);
}

TEST(SamplingDecision, AFrequencyAboveTheKernelsMaxSampleRateIsRefusedAsAConfigError) {
  HostModel host = fixture("this-machine");
  host.max_sample_rate = 4000;  // lowered by the kernel after slow sampling interrupts
  SamplingConfig s = sampling("cpu-clock");
  s.frequency = 5000;
  Decision d = decide_sampling(s, host, builtin_quirks());
  EXPECT_EQ(d.status, DecisionStatus::kRefused);
  EXPECT_NE(d.reason.find("kernel.perf_event_max_sample_rate (4000"), std::string::npos) << d.reason;
  EXPECT_TRUE(d.counters.empty());
  s.frequency = 4000;
  EXPECT_EQ(decide_sampling(s, host, builtin_quirks()).status, DecisionStatus::kOk);
  AgentConfig config = load("version: 1\ndefault:\n  sampling: {frequency: 5000}\n");
  auto refused = refusals_on_host(config, "s.yaml", host, builtin_quirks());
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].line, 3);
}
