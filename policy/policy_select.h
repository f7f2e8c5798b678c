#pragma once
// Which policy applies to a domain: the first policy in file order whose selectors all hold,
// else the default. Pure: the facts come from libvirt through the agent.
#include <map>
#include <string>
#include <vector>

#include "policy/agent_config.h"

namespace kvmprof {

struct DomainFacts {
  std::string name;
  std::string uuid;
  std::string title;
  std::map<std::string, std::string> metadata;  // namespace URI -> that <metadata> element's XML
};

bool selector_matches(const Selector& selector, const DomainFacts& domain);

// Shell-style glob: * ? and [abc] / [a-z] / [!a]. Linear in the text for each '*' (no
// exponential backtracking, whatever the pattern and the VM name).
bool glob_match(std::string_view pattern, std::string_view text);

// Index of the first of `policies` (anything with a `match` Selector: the config's policies,
// the agent's plans of them) whose selectors hold, or policies.size() for the default policy.
template <class P>
size_t select_policy(const std::vector<P>& policies, const DomainFacts& domain) {
  for (size_t i = 0; i < policies.size(); ++i) {
    if (selector_matches(policies[i].match, domain)) return i;
  }
  return policies.size();
}

// The metadata namespace URIs the policies ask about (libvirt is asked only for these).
std::vector<std::string> metadata_uris(const std::vector<Policy>& policies);

}  // namespace kvmprof
