#pragma once
// One way to load agent.yaml, for start, check-config and every reload: read it safely, parse
// it, and check explicit guest settings against the host. Every problem is FILE:LINE:COLUMN.
#include <string>

#include "policy/agent_config.h"
#include "policy/host_model.h"

namespace kvmprof {

ConfigResult load_config_file(const std::string& path, const HostModel& host);
// Read and parse only (explain shows refusals itself instead of failing on them).
ConfigResult parse_config_file(const std::string& path);

// The built-in defaults (what runs when the default config file does not exist).
AgentConfig default_config();

}  // namespace kvmprof
