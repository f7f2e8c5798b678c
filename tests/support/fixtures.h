#pragma once
// CPU fixtures (tests/fixtures/cpus/NAME) read the way the agent reads a live host.
#include <string>

#include "agent/system/host_probe.h"

namespace kvmprof::testing {

inline HostModel fixture(const std::string& name) {
  return probe_host(HostRoot(std::string(KVMPROF_SOURCE_DIR) + "/tests/fixtures/cpus/" + name));
}

}  // namespace kvmprof::testing
