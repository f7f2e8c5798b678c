#pragma once
// The page at `/`: what this agent is (version, revision, config file, last reload), links to
// /metrics and the profiles, and what it sees on this host: every VM with its policy, every
// source up or down with the reason, and every event's decision (status, what it counts, why),
// the `explain` answer readable without a terminal. Plain server-rendered HTML that is also
// well-formed XML, no script, no external assets; every outside string escaped and shown as
// it is (a VM name with quotes, tags or newlines appears literally). Pure: reads the snapshot.
#include <string>

#include "exporters/prometheus_text.h"
#include "exporters/snapshot.h"

namespace kvmprof {

struct StatusInfo {
  BuildInfo build;
  std::string config_path;  // "" when running on the built-in defaults
  std::string metrics_path = "/metrics";
};

std::string status_page(const Snapshot& snapshot, const StatusInfo& info);

}  // namespace kvmprof
