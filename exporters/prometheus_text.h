#pragma once
// The Prometheus rendering of a snapshot: metric families, and the text format served at
// /metrics. Pure: it reads the snapshot only, never libvirt or the kernel.
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

// The families of one snapshot.
std::vector<prometheus::MetricFamily> render(const Snapshot& snapshot, const BuildInfo& build);
// The same in Prometheus' text exposition format (version 0.0.4).
std::string prometheus_text(const Snapshot& snapshot, const BuildInfo& build);

}  // namespace kvmprof
