#pragma once
// `kvmprof-agent probe` and `kvmprof-agent explain`: what this host is, and what each event
// would count on it and why.
#include <string>
#include <vector>

#include "policy/decision.h"

namespace kvmprof {

int run_probe(const std::string& root, bool json);
// On the live host (root "/") each decision is also opened on the agent's own thread through
// the open ladder, so the output shows what the kernel really accepts.
int run_explain(const std::string& root, const std::vector<EventSpec>& events, GuestMode guest,
                const std::vector<SamplingConfig>& sampling);

}  // namespace kvmprof
