#include "policy/host_check.h"

#include "policy/decision.h"
#include "policy/sampling_decision.h"

namespace kvmprof {
namespace {

// `any`: every refusal is an error, not only of explicit guest settings (a sampling event is
// refused only for something its block says: a precise level, a frequency, a guest setting).
void check(const Decision& d, const std::string& what, const Policy& policy, Mark at, const std::string& file,
           std::vector<ConfigError>& out, bool any = false) {
  if (!(d.explicit_request || any) || d.status != DecisionStatus::kRefused) return;
  std::string sources;
  for (const auto& s : d.sources) sources += "; source: " + s;
  out.push_back({file, at.line, at.column,
                 "policy '" + policy.name + "': " + what + d.event + " with guest: " + std::string(to_string(d.requested)) +
                     " is refused on this host: " + d.reason + sources});
}

void check_policy(const Policy& policy, const std::string& file, const HostModel& host, const QuirkTable& quirks,
                  std::vector<ConfigError>& out) {
  for (const auto& event : policy.events) check(decide(event.spec, event.guest, host, quirks), "", policy, event.mark, file, out);
  if (policy.sampling) {
    check(decide_sampling(*policy.sampling, host, quirks), "sampling ", policy, policy.sampling->event.mark, file, out, true);
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
