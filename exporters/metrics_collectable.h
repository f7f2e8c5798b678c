#pragma once
// MetricsCollectable: turns the last snapshot into Prometheus metric families at scrape time.
// It reads the SnapshotStore only; a scrape never waits on libvirt or the kernel.
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <memory>
#include <string>
#include <vector>

#include "exporters/snapshot.h"

namespace kvmprof {

struct BuildInfo {
  std::string version;
  std::string revision;
};

class MetricsCollectable final : public prometheus::Collectable {
 public:
  MetricsCollectable(const SnapshotStore& store, BuildInfo build);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const SnapshotStore& store_;
  BuildInfo build_;
};

// The families of one snapshot; a free function so tests can render without a server.
std::vector<prometheus::MetricFamily> render(const Snapshot& snapshot, const BuildInfo& build);

}  // namespace kvmprof
