#include "policy/series_estimate.h"

namespace kvmprof {

SeriesEstimate event_series(size_t modes, bool hardware, bool per_vm) {
  if (per_vm) return {modes, 0};
  return {0, modes * (hardware ? 3 : 1)};
}

SeriesEstimate sampling_series(GuestMode guest, SampleThreads threads) {
  const size_t emulator = threads == SampleThreads::kAll ? 2 : 0;
  return {3 + 1 + emulator, guest == GuestMode::kExclude ? 2u : 4u};
}

SeriesEstimate estimate_series(const Policy& policy) {
  SeriesEstimate out{kSeriesPerVm, kSeriesPerVcpu};
  for (const auto& e : policy.events) {
    const size_t modes = e.guest == GuestMode::kSplit ? 2 : 1;
    out += event_series(modes, !e.spec.is_software_or_tracepoint(), policy.aggregation == Aggregation::kPerVm);
  }
  if (policy.sampling) out += sampling_series(policy.sampling->event.guest, policy.sampling->threads);
  return out;
}

std::string describe_series(const AgentConfig& config) {
  constexpr size_t kExampleVcpus = 4;
  std::string out = "this config exports about this many series per VM (an estimate; README.md, \"Cardinality\"):\n";
  auto line = [&](const Policy& p) {
    SeriesEstimate s = estimate_series(p);
    out += "  " + p.name + ": about " + std::to_string(s.for_vm(kExampleVcpus)) + " per VM of " +
           std::to_string(kExampleVcpus) + " vCPUs (" + std::to_string(s.per_vm) + " + " + std::to_string(s.per_vcpu) +
           " per vCPU)\n";
  };
  for (const auto& p : config.policies) line(p);
  line(config.default_policy);
  return out;
}

}  // namespace kvmprof
