#include "policy/host_check.h"

#include "policy/decision.h"

namespace kvmprof {
namespace {

void check_policy(const Policy& policy, const std::string& file, const HostModel& host, const QuirkTable& quirks,
                  std::vector<ConfigError>& out) {
  for (const auto& event : policy.events) {
    Decision d = decide(event.spec, event.guest, host, quirks);
    if (!d.explicit_request || d.status != DecisionStatus::kRefused) continue;
    std::string sources;
    for (const auto& s : d.sources) sources += "; source: " + s;
    out.push_back({file, event.mark.line, event.mark.column,
                   "policy '" + policy.name + "': " + d.event + " with guest: " + std::string(to_string(d.requested)) +
                       " is refused on this host: " + d.reason + sources});
  }
}

}  // namespace

std::vector<ConfigError> refusals_on_host(const AgentConfig& config, const std::string& file, const HostModel& host,
                                          const QuirkTable& quirks) {
  std::vector<ConfigError> out;
  for (const auto& policy : config.policies) check_policy(policy, file, host, quirks, out);
  check_policy(config.default_policy, file, host, quirks, out);
  return out;
}

}  // namespace kvmprof
