#include "policy/policy_select.h"

#include <gtest/gtest.h>

#include "agent/system/host_probe.h"
#include "policy/host_check.h"

using namespace kvmprof;

namespace {

AgentConfig config(const std::string& yaml) {
  auto parsed = parse_agent_config(yaml, "p.yaml");
  if (auto* errors = std::get_if<std::vector<ConfigError>>(&parsed)) {
    ADD_FAILURE() << errors->front().format();
    return {};
  }
  return std::get<AgentConfig>(parsed);
}

const char* kPolicies = R"(version: 1
policies:
  - name: by-uuid
    match: {uuid: 3CD4A570-41DC-49B4-9FF4-5BB95413E660}
  - name: tenant-a
    match: {domain: "tenant-a-*"}
  - name: tenant-a-gold
    match: {domain: "tenant-a-gold", title: "gold"}
  - name: investigate
    match: {metadata: {uri: "https://kvmprof.example/1", key: level, value: investigate}}
  - name: numbered
    match: {domain: "vm[0-9]?"}
)";

std::string pick(const AgentConfig& c, DomainFacts d) {
  size_t i = select_policy(c.policies, d);
  return i == c.policies.size() ? "default" : c.policies[i].name;
}

}  // namespace

TEST(PolicySelect, FirstMatchInFileOrderThenDefault) {
  AgentConfig c = config(kPolicies);
  EXPECT_EQ(pick(c, {"tenant-a-1", "x", "", {}}), "tenant-a");
  EXPECT_EQ(pick(c, {"tenant-a-gold", "x", "gold", {}}), "tenant-a");  // the earlier policy wins
  EXPECT_EQ(pick(c, {"tenant-a-1", "3cd4a570-41dc-49b4-9ff4-5bb95413e660", "", {}}), "by-uuid");  // UUIDs ignore case
  EXPECT_EQ(pick(c, {"other", "x", "", {}}), "default");
}

TEST(PolicySelect, GlobsAndTitles) {
  AgentConfig c = config(kPolicies);
  EXPECT_EQ(pick(c, {"vm7a", "x", "", {}}), "numbered");
  EXPECT_EQ(pick(c, {"vmx1", "x", "", {}}), "default");
  EXPECT_TRUE(glob_match("a*b?c[!0-9]", "aXYZbQcz"));
  EXPECT_FALSE(glob_match("a*b?c[!0-9]", "aXYZbQc5"));
  EXPECT_TRUE(glob_match("*", ""));
}

TEST(PolicySelect, MetadataKeyWithOrWithoutNamespacePrefix) {
  AgentConfig c = config(kPolicies);
  std::string uri = "https://kvmprof.example/1";
  EXPECT_EQ(pick(c, {"db", "x", "", {{uri, "<profile xmlns=\"https://kvmprof.example/1\"><level>investigate</level></profile>"}}}),
            "investigate");
  EXPECT_EQ(pick(c, {"db", "x", "", {{uri, "<k:profile xmlns:k=\"u\"><k:level> investigate </k:level></k:profile>"}}}),
            "investigate");
  EXPECT_EQ(pick(c, {"db", "x", "", {{uri, "<profile><level>investigated</level></profile>"}}}), "default");
  EXPECT_EQ(pick(c, {"db", "x", "", {{"https://other", "<level>investigate</level>"}}}), "default");
  EXPECT_EQ(pick(c, {"db", "x", "", {{uri, "<p><level a=\"1\"><x>investigate</x></level></p>"}}}), "default");
  EXPECT_EQ(pick(c, {"db", "x", "", {{uri, "<p><level/><level>investigate</level></p>"}}}), "investigate");
  EXPECT_EQ(pick(c, {"db", "x", "", {{uri, "<p><level>investigate</other></p>"}}}), "default");
  EXPECT_EQ(pick(c, {"db", "x", "", {{uri, "<level>investigate"}}}), "default");  // cut short
  // A 1 MiB attribute on the element: std::regex ran past the stack on it (segfault).
  std::string huge = "<level a='" + std::string(1 << 20, 'x') + "'>investigate</level>";
  EXPECT_EQ(pick(c, {"db", "x", "", {{uri, huge}}}), "investigate");
  EXPECT_EQ(metadata_uris(c.policies), std::vector<std::string>{uri});
}

// Found by the policy_select fuzz target: libvirt writes metadata with libxml2.
TEST(PolicySelect, MetadataValuesAreComparedAsLibvirtEscapesThem) {
  auto matches = [](std::string value, std::string xml) {
    Selector s;
    s.metadata = Selector::Metadata{"u", "level", std::move(value)};
    return selector_matches(s, DomainFacts{"vm", "", "", {{"u", std::move(xml)}}});
  };
  EXPECT_TRUE(matches("R&D <1>", "<p><level>R&amp;D &lt;1&gt;</level></p>"));
  EXPECT_TRUE(matches("a\"b'c\u00e9", "<level>a&quot;b&apos;c&#233;</level>"));
  EXPECT_TRUE(matches("x", "<level>&#x78;</level>"));
  EXPECT_TRUE(matches("", "<p><level/></p>"));
  EXPECT_FALSE(matches("x", "<p><level/></p>"));
  EXPECT_FALSE(matches("R&D", "<level>R&bogus;D</level>"));
  EXPECT_FALSE(matches("R", "<level>R&#0;</level>"));
  EXPECT_FALSE(matches("R", "<level>R&;</level>"));  // threw std::out_of_range (found by the fuzzer)
  // Quadratic before: every "<level" scanned to the end for "</" (minutes at 560 KB under ASan).
  std::string many;
  for (int i = 0; i < 100000; ++i) many += "<level>";
  EXPECT_FALSE(matches("x", many + "</level>"));
  EXPECT_TRUE(matches("x", many + "<level>x</level>"));
}

TEST(HostCheck, ExplicitRefusalsAreConfigErrorsAtTheEvent) {
  AgentConfig c = config(R"(version: 1
policies:
  - name: pebs
    match: {domain: "x*"}
    events:
      - "cycles:pG"
      - {event: "cycles:p", guest: include}
      - "cycles:pp"
)");
  HostModel skylake = probe_host(HostRoot(std::string(KVMPROF_SOURCE_DIR) + "/tests/fixtures/cpus/intel-skylake-client-new-ucode"));
  auto errors = refusals_on_host(c, "p.yaml", skylake, builtin_quirks());
  ASSERT_EQ(errors.size(), 2u);  // auto (the third) is never an error
  EXPECT_EQ(errors[0].line, 6);
  EXPECT_EQ(errors[0].column, 9);
  EXPECT_NE(errors[0].message.find("precise-exclude-host-hang"), std::string::npos);
  EXPECT_NE(errors[0].message.find("source: "), std::string::npos);
  EXPECT_EQ(errors[1].line, 7);
  EXPECT_NE(errors[1].message.find("intel-pebs-host-only"), std::string::npos);
  HostModel here = probe_host(HostRoot(std::string(KVMPROF_SOURCE_DIR) + "/tests/fixtures/cpus/this-machine"));
  EXPECT_TRUE(refusals_on_host(c, "p.yaml", here, builtin_quirks()).empty());  // unsupported, not refused
}

TEST(Glob, APathologicalPatternDoesNotBacktrackExponentially) {
  // Recursive backtracking takes about 2^30 steps here; the greedy matcher a few thousand.
  EXPECT_FALSE(glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", std::string(60, 'a')));
  EXPECT_TRUE(glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", std::string(60, 'a') + "b"));
  EXPECT_TRUE(glob_match("vm-[0-9]*-[!x]?", "vm-42-prod-yz"));
  EXPECT_FALSE(glob_match("vm-[0-9]*-[!x]?", "vm-42-prod-xz"));
  EXPECT_TRUE(glob_match("a[b", "a[b"));  // no closing ']': a literal
  EXPECT_TRUE(glob_match("**", ""));
}
