#pragma once
// An opened counter or sampling event, as the decision tables write it.
#include <string>

#include "agent/system/open_ladder.h"

namespace kvmprof::testing {

// "mode p<precise_ip> eg<exclude_guest> eh<exclude_host>", e.g. "host p1 eg1 eh0".
inline std::string describe(const OpenedCounter& c) {
  return c.mode + " p" + std::to_string(c.attr.precise_ip) + " eg" + std::to_string(c.attr.exclude_guest) + " eh" +
         std::to_string(c.attr.exclude_host);
}

}  // namespace kvmprof::testing
