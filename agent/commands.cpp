#include "agent/commands.h"

#include <iostream>

#include "agent/collect/event_plan.h"
#include "agent/report.h"
#include "agent/system/host_probe.h"
#include "agent/system/vendor_events.h"
#include "policy/sampling_decision.h"

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
  std::optional<RingProbe> ring;
  if (live_host(root)) ring = probe_ring(perf, host);
  const RingProbe* r = ring ? &*ring : nullptr;
  std::cout << (json ? format_host_json(host, builtin_quirks(), r) : format_host(host, builtin_quirks(), r));
  return 0;
}

// The decision, completed (a tracepoint's id) and, on the live host, opened through the ladder.
void explain_one(Decision d, const EventSpec& spec, const std::string& root, const HostModel& host, PerfBackend& perf,
                 bool sampling) {
  if (const auto* tp = std::get_if<TracepointEvent>(&spec.kind)) {
    auto id = tracepoint_id(HostRoot(root), *tp);
    for (auto& c : d.counters) c.attr.config = std::holds_alternative<uint64_t>(id) ? std::get<uint64_t>(id) : 0;
  }
  if (live_host(root) && !d.counters.empty()) {
    OpenedDecision opened = open_decision(perf, d, 0, -1, -1, host);
    std::cout << format_decision(d, &opened, sampling) << "\n";
  } else {
    std::cout << format_decision(d, nullptr, sampling) << (live_host(root) ? "" : "  (decided for " + root + "; not opened)\n")
              << "\n";
  }
}

int run_explain(const std::string& root, const std::vector<EventSpec>& events, GuestMode guest,
                const std::vector<SamplingConfig>& sampling) {
  RealPerfBackend perf;
  HostModel host = host_for(root, perf);
  for (const auto& spec : events) {
    explain_one(decide(resolve_vendor_event(spec), guest, host, builtin_quirks()), spec, root, host, perf, false);
  }
  for (SamplingConfig s : sampling) {
    s.event.spec = resolve_vendor_event(s.event.spec);
    explain_one(decide_sampling(s, host, builtin_quirks()), s.event.spec, root, host, perf, true);
  }
  return 0;
}

}  // namespace kvmprof
