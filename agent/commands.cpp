#include "agent/commands.h"

#include <iostream>

#include "agent/collect/event_plan.h"
#include "agent/report.h"
#include "agent/system/host_probe.h"
#include "agent/system/vendor_events.h"

namespace kvmprof {
namespace {

bool live_host(const std::string& root) { return root.empty() || root == "/"; }

HostModel host_for(const std::string& root, PerfBackend& perf) {
  HostModel host = probe_host(HostRoot(root));
  if (live_host(root)) host.kernel = probe_kernel(perf);  // a fixture has no kernel to ask
  return host;
}

}  // namespace

int run_probe(const std::string& root, bool json) {
  RealPerfBackend perf;
  HostModel host = host_for(root, perf);
  std::cout << (json ? format_host_json(host, builtin_quirks()) : format_host(host, builtin_quirks()));
  return 0;
}

int run_explain(const std::string& root, const std::vector<EventSpec>& events, GuestMode guest) {
  RealPerfBackend perf;
  HostModel host = host_for(root, perf);
  HostRoot host_root(root);
  for (const auto& spec : events) {
    Decision d = decide(resolve_vendor_event(spec), guest, host, builtin_quirks());
    if (const auto* tp = std::get_if<TracepointEvent>(&spec.kind)) {
      auto id = tracepoint_id(host_root, *tp);
      for (auto& c : d.counters) c.attr.config = std::holds_alternative<uint64_t>(id) ? std::get<uint64_t>(id) : 0;
    }
    if (live_host(root) && !d.counters.empty()) {
      OpenedDecision opened = open_decision(perf, d, 0, -1, -1, host);
      std::cout << format_decision(d, &opened) << "\n";
    } else {
      std::cout << format_decision(d, nullptr) << (live_host(root) ? "" : "  (decided for " + root + "; not opened)\n") << "\n";
    }
  }
  return 0;
}

}  // namespace kvmprof
