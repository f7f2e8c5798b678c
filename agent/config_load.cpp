#include "agent/config_load.h"

#include "agent/system/config_file.h"
#include "policy/host_check.h"

namespace kvmprof {

ConfigResult parse_config_file(const std::string& path) {
  auto text = read_config_file(path);
  if (!text.ok()) return std::vector<ConfigError>{{path, 1, 1, "cannot read: " + text.error().message()}};
  return parse_agent_config(*text, path);
}

ConfigResult load_config_file(const std::string& path, const HostModel& host) {
  auto parsed = parse_config_file(path);
  if (auto* config = std::get_if<AgentConfig>(&parsed)) {
    auto refused = refusals_on_host(*config, path, host, builtin_quirks());
    if (!refused.empty()) return refused;
  }
  return parsed;
}

AgentConfig default_config() { return std::get<AgentConfig>(parse_agent_config("version: 1\n", "<defaults>")); }

}  // namespace kvmprof
