#pragma once
// The capabilities the agent uses when it does not run as root, each with what it is for and
// what the agent cannot do without it; the unit (deploy/kvmprof-agent.service) grants exactly
// these. Logged at start, so an operator sees at once what a missing one costs.
#include <cstdint>
#include <string>
#include <vector>

namespace kvmprof {

struct NeededCapability {
  int bit;  // linux/capability.h
  const char* name;
  const char* without;  // what the agent cannot do without it
};

const std::vector<NeededCapability>& needed_capabilities();

// "CAP_PERFMON yes, CAP_SYS_PTRACE no, ..." for the effective set `effective` (CapEff).
std::string capability_summary(uint64_t effective);

// Logs the summary (info), and a warning for each missing capability with what it costs.
void log_capabilities(uint64_t effective);

}  // namespace kvmprof
