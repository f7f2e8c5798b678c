#include "policy/event_spec.h"

#include <gtest/gtest.h>
#include <linux/perf_event.h>

using namespace kvmprof;

namespace {

EventSpec spec(std::string_view text) {
  auto parsed = parse_event_spec(text);
  if (auto* err = std::get_if<EventSpecError>(&parsed)) {
    ADD_FAILURE() << text << ": " << err->column << ": " << err->message;
    return {};
  }
  return std::get<EventSpec>(parsed);
}

EventSpecError error(std::string_view text) {
  auto parsed = parse_event_spec(text);
  EXPECT_TRUE(std::holds_alternative<EventSpecError>(parsed)) << text << " was accepted";
  return std::holds_alternative<EventSpecError>(parsed) ? std::get<EventSpecError>(parsed) : EventSpecError{};
}

}  // namespace

TEST(EventSpec, KnowsSoftwareEventsAndAliases) {
  auto s = spec("cs");
  EXPECT_EQ(s.text, "context-switches");
  EXPECT_EQ(std::get<SoftwareEvent>(s.kind).config, uint64_t{PERF_COUNT_SW_CONTEXT_SWITCHES});
}

TEST(EventSpec, KnowsHardwareCacheAndRawEvents) {
  auto cycles = std::get<CoreEvent>(spec("cpu-cycles").kind);
  EXPECT_EQ(cycles.type, uint32_t{PERF_TYPE_HARDWARE});
  EXPECT_EQ(cycles.config, uint64_t{PERF_COUNT_HW_CPU_CYCLES});
  EXPECT_EQ(spec("cpu-cycles").text, "cycles");
  auto llc = std::get<CoreEvent>(spec("LLC-load-misses").kind);
  EXPECT_EQ(llc.type, uint32_t{PERF_TYPE_HW_CACHE});
  EXPECT_EQ(llc.config, 0x10002u);  // LL | READ << 8 | MISS << 16, as perf encodes it
  auto raw = std::get<CoreEvent>(spec("r01c2").kind);
  EXPECT_EQ(raw.type, uint32_t{PERF_TYPE_RAW});
  EXPECT_EQ(raw.config, 0x01c2u);
}

TEST(EventSpec, ParsesPmuTermsWithModifiers) {
  auto s = spec("cpu/event=0x3c,umask=0x00,any/pp");
  auto terms = std::get<PmuTermsEvent>(s.kind);
  EXPECT_EQ(terms.pmu, "cpu");
  ASSERT_EQ(terms.terms.size(), 3u);
  EXPECT_EQ(terms.terms[0], (std::pair<std::string, uint64_t>{"event", 0x3c}));
  EXPECT_EQ(terms.terms[2].second, 1u);
  EXPECT_EQ(s.mods.precise, 2u);
  EXPECT_EQ(s.text, "cpu/event=0x3c,umask=0x00,any/:pp");
}

TEST(EventSpec, VendorNamesAreLeftForLibpfm) {
  EXPECT_EQ(std::get<NamedEvent>(spec("INST_RETIRED.ANY_P").kind).name, "INST_RETIRED.ANY_P");
  EXPECT_EQ(std::get<NamedEvent>(spec("RETIRED_INSTRUCTIONS:u").kind).name, "RETIRED_INSTRUCTIONS");
}

TEST(EventSpec, ParsesTracepoints) {
  auto tp = std::get<TracepointEvent>(spec("kvm:kvm_exit").kind);
  EXPECT_EQ(tp.subsystem, "kvm");
  EXPECT_EQ(tp.name, "kvm_exit");
}

TEST(EventSpec, ModifiersFollowPerfsFirstOneExcludesRule) {
  auto u = spec("cycles:u").mods;
  EXPECT_FALSE(u.exclude_user);
  EXPECT_TRUE(u.exclude_kernel);
  EXPECT_TRUE(u.exclude_hv);
  EXPECT_FALSE(u.guest_host_given);
  EXPECT_FALSE(u.exclude_guest);  // perf 6.1 would add exclude_guest here; we leave it to policy
  auto uk = spec("cycles:uk").mods;
  EXPECT_FALSE(uk.exclude_user);
  EXPECT_FALSE(uk.exclude_kernel);
  EXPECT_TRUE(uk.exclude_hv);
  auto g = spec("cycles:G").mods;
  EXPECT_TRUE(g.guest_host_given);
  EXPECT_FALSE(g.exclude_guest);
  EXPECT_TRUE(g.exclude_host);
  auto gh = spec("cycles:GH").mods;
  EXPECT_FALSE(gh.exclude_guest);
  EXPECT_FALSE(gh.exclude_host);
  auto ppp = spec("instructions:pppH").mods;
  EXPECT_EQ(ppp.precise, 3u);
  EXPECT_TRUE(ppp.exclude_guest);
  EXPECT_FALSE(ppp.exclude_host);
  EXPECT_TRUE(spec("cycles:P").mods.precise_max);
}

TEST(EventSpec, PointsAtTheBadToken) {
  EXPECT_EQ(error("kvm:kvm exit").column, 7u);
  EXPECT_EQ(error(":x").column, 0u);
  EXPECT_EQ(error("kvm:").column, 4u);
  EXPECT_EQ(error("cycles:pppp").column, 10u);
  EXPECT_EQ(error("cycles:pP").column, 7u);
  EXPECT_EQ(error("cycles:px").column, 8u);
  EXPECT_EQ(error("task\"clock").column, 4u);
  EXPECT_EQ(error("cpu/event=0x3c").column, 3u);
  EXPECT_EQ(error("cpu/event=zz/").column, 10u);
  EXPECT_EQ(error("cpu/event=1/pq").column, 13u);
  EXPECT_NE(error("cyclez").message.find("unknown event 'cyclez'"), std::string::npos);
  EXPECT_EQ(error("").message, "empty event spec");
}
