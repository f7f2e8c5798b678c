#pragma once
// `kvmprof-agent profile`: fetches a VM's profile from the running agent and writes it to a
// file an operator opens (an SVG flame graph in a browser, pprof in `go tool pprof`).
#include "agent/cli.h"
#include "policy/listen_address.h"

namespace kvmprof {

int run_profile(const CliOptions& opts, const ListenAddress& agent);

}  // namespace kvmprof
