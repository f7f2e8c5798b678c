#pragma once
// RLIMIT_NOFILE as a host limit: how many perf fds (counters and sampling rings) the agent may
// still hold so that /metrics keeps answering. The rest of the agent (libvirt, the HTTP server
// and its connections, procfs files: 2 per followed thread, profiles' ELF files) must find fds
// too, and an fd taken by a counter leaves the acceptor with EMFILE.
#include <cstddef>
#include <optional>

#include "policy/limits.h"

namespace kvmprof {

// The perf fds the soft limit leaves room for: the limit, less the fds the agent holds now
// other than its `perf_fds_held`, less the procfs fds still to open, less a reserve for what
// comes and goes (1/16 of the limit, 8 to 64). nullopt without a limit.
std::optional<size_t> perf_fd_room(size_t perf_fds_held, size_t procfs_fds_to_open);

// Caps `limits` so that the demands fit the room: rings first (a sampled thread takes at least
// one fd), counters get what the rings leave. The policies then degrade by priority as for any
// host limit.
void cap_by_fd_room(Limits& limits, const std::vector<PolicyDemand>& demands, size_t room);

// The perf fds the demands ask for: counters and one per sampled thread.
size_t perf_fd_demand(const std::vector<PolicyDemand>& demands);

}  // namespace kvmprof
