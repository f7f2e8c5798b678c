#pragma once
// ProfilePage: the per-VM profiles over HTTP.
//   /debug/pprof/profile?seconds=N     gzipped profile.proto (what Parca scrapes, and what
//                                      `go tool pprof URL` reads), Go's net/http/pprof headers
//   /debug/pprof/flamegraph?seconds=N  an SVG flame graph (format=folded: folded stacks)
// Filters: domain=NAME, uuid=UUID, mode=guest,host_kernel,...; format=pprof|folded|svg on
// either path. Unlike Go's handler it does not wait N seconds: the samples of the last N seconds
// are already in the profile store, so the answer comes at once and never holds up collection.
// One profile is built at a time (the other HTTP thread stays free for /metrics); a request
// that comes meanwhile gets 503 with Retry-After.
#include <atomic>
#include <string_view>

#include "agent/http/http_server.h"
#include "agent/profile/guest_kallsyms.h"
#include "agent/profile/profile_store.h"
#include "agent/symbols/symbolizer.h"
#include "exporters/snapshot.h"

namespace kvmprof {

class ProfilePage {
 public:
  ProfilePage(const ProfileStore& store, const SnapshotStore& snapshots, Symbolizer& symbolizer)
      : store_(store), snapshots_(snapshots), symbolizer_(symbolizer) {}

  // `format`: the path's default, "pprof" or "svg".
  HttpResponse serve(const HttpRequest& request, std::string_view format);
  size_t guest_symbol_bytes() const { return guests_.bytes(); }
  void set_guest_symbol_bytes(size_t bytes) { guests_.set_max_bytes(bytes); }  // profiles.symbol_cache

 private:
  const ProfileStore& store_;
  const SnapshotStore& snapshots_;
  Symbolizer& symbolizer_;
  GuestKallsyms guests_;
  std::atomic<bool> building_{false};
};

}  // namespace kvmprof
