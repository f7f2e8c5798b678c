#include "agent/collect/fd_room.h"

#include <sys/resource.h>

#include <algorithm>
#include <filesystem>

namespace kvmprof {
namespace {

// Unknown when /proc/self/fd cannot be listed (EMFILE: every fd is taken).
std::optional<size_t> fds_held() {
  std::error_code ec;
  size_t n = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) ++n;
  return ec ? std::nullopt : std::optional<size_t>(n);
}

// 0 is "no limit" in Limits: a cap of nothing is 1.
void cap(size_t& limit, size_t room) { limit = limit == 0 ? std::max<size_t>(room, 1) : std::min(limit, std::max<size_t>(room, 1)); }

}  // namespace

std::optional<size_t> perf_fd_room(size_t perf_fds_held, size_t procfs_fds_to_open) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return std::nullopt;
  const size_t soft = lim.rlim_cur;
  const size_t reserve = std::clamp<size_t>(soft / 16, 8, 64);
  const size_t held = fds_held().value_or(soft);
  const size_t others = held - std::min(held, perf_fds_held) + procfs_fds_to_open + reserve;
  return soft > others ? soft - others : 0;
}

size_t perf_fd_demand(const std::vector<PolicyDemand>& demands) {
  size_t n = 0;
  for (const auto& d : demands) n += open_counters(d, {}) + d.sampled_threads;
  return n;
}

void cap_by_fd_room(Limits& limits, const std::vector<PolicyDemand>& demands, size_t room) {
  size_t sampled = 0;
  for (const auto& d : demands) sampled += d.sampled_threads;
  cap(limits.max_sampled_threads, room);
  cap(limits.max_counters, room - std::min(room, sampled));
}

}  // namespace kvmprof
