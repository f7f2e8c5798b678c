#pragma once
// A small HTTP/1.1 GET client for the CLI's `profile` command, which asks the running agent
// over loopback. Boost.Beast, synchronous, with one deadline for the whole exchange.
#include <chrono>
#include <string>

#include "agent/system/result.h"
#include "policy/listen_address.h"

namespace kvmprof {

struct HttpReply {
  unsigned status = 0;
  std::string body;
  std::string retry_after;  // the Retry-After header of a 503
};

// GET `target` ("/debug/pprof/profile?seconds=30") from the agent listening at `listen`: an
// unspecified address (":9477", "0.0.0.0", "[::]") is reached on loopback.
Result<HttpReply> http_get(const ListenAddress& listen, const std::string& target, std::chrono::seconds timeout);

}  // namespace kvmprof
