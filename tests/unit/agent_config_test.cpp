#include "policy/agent_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

using namespace kvmprof;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const fs::path kSource = KVMPROF_SOURCE_DIR;

}  // namespace

TEST(AgentConfig, DefaultsMatchTheDesign) {
  auto config = std::get<AgentConfig>(parse_agent_config("version: 1\n", "a.yaml"));
  EXPECT_EQ(config.listen, ":9477");
  EXPECT_EQ(config.metrics_path, "/metrics");
  EXPECT_EQ(config.libvirt_uri, "qemu:///system");
  EXPECT_EQ(config.interval, std::chrono::seconds(5));
  const auto& events = config.default_policy.events;
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(events[0].spec.text, "task-clock");
  EXPECT_EQ(events[4].spec.text, "kvm:kvm_exit");
  EXPECT_TRUE(config.policies.empty());
}

TEST(AgentConfig, ReadsEveryKey) {
  auto config = std::get<AgentConfig>(parse_agent_config(
      "version: 1\nlisten: 127.0.0.1:0\nmetrics_path: /m\ninterval: 250ms\n"
      "libvirt: {uri: 'qemu:///session', reconnect_max_backoff: 2m}\nevents: [cs, 'kvm:kvm_pio']\n",
      "a.yaml"));
  EXPECT_EQ(config.listen, "127.0.0.1:0");
  EXPECT_EQ(config.metrics_path, "/m");
  EXPECT_EQ(config.interval, std::chrono::milliseconds(250));
  EXPECT_EQ(config.libvirt_uri, "qemu:///session");
  EXPECT_EQ(config.reconnect_max_backoff, std::chrono::minutes(2));
  ASSERT_EQ(config.default_policy.events.size(), 2u);
  EXPECT_EQ(config.default_policy.events[0].spec.text, "context-switches");
}

TEST(AgentConfig, EveryShippedConfigLoads) {
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(kSource / "config")) {
    if (entry.path().extension() != ".yaml") continue;
    ++files;
    auto result = parse_agent_config(slurp(entry.path()), entry.path().string());
    const auto* errors = std::get_if<std::vector<ConfigError>>(&result);
    EXPECT_EQ(errors, nullptr) << (errors ? errors->front().format() : "");
  }
  EXPECT_GE(files, 1u);
}

// Each tests/fixtures/configs/bad/NAME.yaml has NAME.expected: every error line, without the
// file name, in order.
TEST(AgentConfig, EachBrokenConfigGivesItsFileLineColumnError) {
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(kSource / "tests/fixtures/configs/bad")) {
    if (entry.path().extension() != ".yaml") continue;
    ++files;
    auto expected = slurp(fs::path(entry.path()).replace_extension(".expected"));
    auto result = parse_agent_config(slurp(entry.path()), "bad.yaml");
    const auto* errors = std::get_if<std::vector<ConfigError>>(&result);
    ASSERT_NE(errors, nullptr) << entry.path() << " was accepted";
    std::string got;
    for (const auto& e : *errors) got += e.format().substr(std::string("bad.yaml:").size()) + "\n";
    EXPECT_EQ(got, expected) << entry.path();
  }
  EXPECT_GE(files, 15u);
}

TEST(AgentConfig, ParsesDurations) {
  EXPECT_EQ(parse_duration("5s"), std::chrono::seconds(5));
  EXPECT_EQ(parse_duration("100ms"), std::chrono::milliseconds(100));
  EXPECT_EQ(parse_duration("2m"), std::chrono::minutes(2));
  EXPECT_EQ(parse_duration("1h"), std::chrono::hours(1));
  for (const char* bad : {"", "5", "s", "-5s", "5 s", "5sec", "99999999999999999999s"}) {
    EXPECT_EQ(parse_duration(bad).count(), 0) << bad;
  }
}

TEST(AgentConfig, PreciseKeyIsThePerfModifier) {
  auto config = std::get<AgentConfig>(parse_agent_config(
      "version: 1\nevents:\n  - {event: cycles, guest: exclude, precise: 2}\n  - {event: instructions, precise: max}\n",
      "a.yaml"));
  const auto& events = config.default_policy.events;
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].spec.mods.precise, 2u);
  EXPECT_EQ(events[0].spec.text, "cycles:pp");
  EXPECT_EQ(events[0].guest, GuestMode::kExclude);
  EXPECT_TRUE(events[1].spec.mods.precise_max);
  auto errors = std::get<std::vector<ConfigError>>(
      parse_agent_config("version: 1\nevents:\n  - {event: 'cycles:p', precise: 1}\n  - {event: cycles, precise: 7}\n", "a.yaml"));
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].format(), "a.yaml:3:34: event 'cycles:p' already has p/P modifiers; drop 'precise' or the modifier");
  EXPECT_EQ(errors[1].format(), "a.yaml:4:30: 'precise' must be 0, 1, 2, 3 or max");
}
