#pragma once
// One fuzz input = the text of an agent.yaml. fuzz_agent_config_input parses it with
// parse_agent_config and checks agent_config.h's promises: it is accepted, or refused with
// problems that each have the file, a line and a column from 1 and a message, in the file's
// order; what is accepted keeps every value in its documented range, names every policy once
// (never "default"), and every event's canonical text parses again to itself.
// Used by agent_config_fuzz.cpp; a unit test replays tests/fuzz/corpus/agent_config/ through it.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <variant>

#include "policy/agent_config.h"
#include "policy/listen_address.h"
#include "tests/fuzz/fuzz_promise.h"

namespace kvmprof::testing {

inline void fuzz_events_reparse(const std::vector<PolicyEvent>& events) {
  for (const auto& e : events) {
    auto again = parse_event_spec(e.spec.text);
    KVMPROF_FUZZ_PROMISE(std::holds_alternative<EventSpec>(again) && std::get<EventSpec>(again).text == e.spec.text);
  }
}

inline void fuzz_agent_config_input(const uint8_t* data, size_t size) {
  const std::string file = "/etc/kvmprof/agent.yaml";
  auto parsed = parse_agent_config(std::string_view(reinterpret_cast<const char*>(data), size), file);
  if (auto* errors = std::get_if<std::vector<ConfigError>>(&parsed)) {
    KVMPROF_FUZZ_PROMISE(!errors->empty());
    for (size_t i = 0; i < errors->size(); ++i) {
      const auto& e = (*errors)[i];
      KVMPROF_FUZZ_PROMISE(e.file == file && e.line >= 1 && e.column >= 1 && !e.message.empty());
      if (i > 0) KVMPROF_FUZZ_PROMISE(std::tie((*errors)[i - 1].line, (*errors)[i - 1].column) <= std::tie(e.line, e.column));
    }
    return;
  }
  const auto& config = std::get<AgentConfig>(parsed);
  KVMPROF_FUZZ_PROMISE(std::holds_alternative<ListenAddress>(parse_listen(config.listen)));
  KVMPROF_FUZZ_PROMISE(!config.metrics_path.empty() && config.metrics_path[0] == '/');
  KVMPROF_FUZZ_PROMISE(config.interval >= std::chrono::milliseconds(100) && config.interval <= std::chrono::hours(1));
  KVMPROF_FUZZ_PROMISE(config.limits.max_group_size >= 2 && config.limits.max_group_size <= 32);
  KVMPROF_FUZZ_PROMISE(config.profiles.window >= std::chrono::seconds(10) && config.profiles.window <= std::chrono::hours(1));
  KVMPROF_FUZZ_PROMISE(config.web_config.empty() || config.web_config[0] == '/');
  std::set<std::string> names;
  for (const auto& policy : config.policies) {
    KVMPROF_FUZZ_PROMISE(!policy.name.empty() && policy.name != "default" && names.insert(policy.name).second);
    fuzz_events_reparse(policy.events);
  }
  fuzz_events_reparse(config.default_policy.events);
}

}  // namespace kvmprof::testing
