#pragma once
// Config validation that needs the host: explicit guest/host requests (guest: include,
// exclude, split, or G/H in the spec) of counted and sampling events that the policy engine
// refuses on this host are config errors at the event, naming the quirk and its source.
// `auto` is never an error.
#include <string>
#include <vector>

#include "policy/agent_config.h"
#include "policy/host_model.h"
#include "policy/quirk_table.h"

namespace kvmprof {

std::vector<ConfigError> refusals_on_host(const AgentConfig& config, const std::string& file, const HostModel& host,
                                          const QuirkTable& quirks);

}  // namespace kvmprof
