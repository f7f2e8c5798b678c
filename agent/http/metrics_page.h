#pragma once
// MetricsPage: /metrics. The last snapshot is rendered once (and gzipped once, on the first
// scrape that accepts gzip); every later scrape of the same snapshot gets the same bytes, so
// scrapes cost no rendering and no syscalls beyond the socket.
#include <memory>
#include <mutex>
#include <string>

#include "agent/http/http_server.h"
#include "exporters/prometheus_text.h"

namespace kvmprof {

class MetricsPage {
 public:
  MetricsPage(const SnapshotStore& store, BuildInfo build) : store_(store), build_(std::move(build)) {}
  HttpResponse serve(const HttpRequest& request);

 private:
  const SnapshotStore& store_;
  const BuildInfo build_;
  std::mutex mu_;
  std::shared_ptr<const Snapshot> rendered_;  // the snapshot text_ and gzip_ belong to
  std::shared_ptr<const std::string> text_, gzip_;
};

// The Prometheus text format's content type (what Prometheus asks for and node_exporter sends).
inline constexpr const char* kPrometheusTextType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace kvmprof
