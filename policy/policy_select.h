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

// Index into `policies`, or policies.size() for the default policy.
size_t select_policy(const std::vector<Policy>& policies, const DomainFacts& domain);

// The metadata namespace URIs the policies ask about (libvirt is asked only for these).
std::vector<std::string> metadata_uris(const std::vector<Policy>& policies);

}  // namespace kvmprof
