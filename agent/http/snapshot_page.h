#pragma once
// SnapshotPage: a page made from the last snapshot, /metrics and the status page at `/`. Each
// snapshot is rendered once (and gzipped once, on the first request that accepts gzip); every
// later request of the same snapshot gets the same bytes, so scrapes cost no rendering and no
// syscalls beyond the socket.
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "agent/http/http_server.h"
#include "exporters/snapshot.h"

namespace kvmprof {

class SnapshotPage {
 public:
  using Render = std::function<std::string(const Snapshot&)>;
  SnapshotPage(const SnapshotStore& store, Render render, std::string content_type)
      : store_(store), render_(std::move(render)), content_type_(std::move(content_type)) {}
  HttpResponse serve(const HttpRequest& request);

 private:
  const SnapshotStore& store_;
  const Render render_;
  const std::string content_type_;
  std::mutex mu_;
  std::shared_ptr<const Snapshot> rendered_;  // the snapshot text_ and gzip_ belong to
  std::shared_ptr<const std::string> text_, gzip_;
};

// The Prometheus text format's content type (what Prometheus asks for and node_exporter sends).
inline constexpr const char* kPrometheusTextType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace kvmprof
