// The series estimate that max_series and check-config use, per policy shape.
#include "policy/series_estimate.h"

#include <gtest/gtest.h>

using namespace kvmprof;

namespace {

Policy policy(std::vector<std::pair<std::string, GuestMode>> events, Aggregation aggregation = Aggregation::kPerVcpu) {
  Policy p;
  p.name = "p";
  p.aggregation = aggregation;
  for (const auto& [text, guest] : events) p.events.push_back({std::get<EventSpec>(parse_event_spec(text)), guest, {}});
  return p;
}

}  // namespace

TEST(SeriesEstimate, SoftwareEventsAndTracepointsAreOneSeriesPerVcpu) {
  SeriesEstimate s = estimate_series(policy({{"task-clock", GuestMode::kAuto}, {"kvm:kvm_pio", GuestMode::kAuto}}));
  EXPECT_EQ(s.per_vm, 4u);
  EXPECT_EQ(s.per_vcpu, 14u + 2u);
  EXPECT_EQ(s.for_vm(4), 68u);
}

TEST(SeriesEstimate, HardwareEventsAddEnabledAndRunningAndSplitDoublesTheModes) {
  SeriesEstimate s = estimate_series(policy({{"cycles", GuestMode::kSplit}, {"instructions", GuestMode::kAuto}}));
  EXPECT_EQ(s.per_vcpu, 14u + 2u * 3u + 3u);
}

TEST(SeriesEstimate, PerVmAggregationMovesEventSeriesToTheVm) {
  SeriesEstimate s = estimate_series(policy({{"cycles", GuestMode::kSplit}, {"task-clock", GuestMode::kAuto}}, Aggregation::kPerVm));
  EXPECT_EQ(s.per_vm, 4u + 3u);
  EXPECT_EQ(s.per_vcpu, 14u);
}

TEST(SeriesEstimate, SamplingAddsModesPerVcpuAndLossesPerVm) {
  Policy p = policy({});
  p.sampling = SamplingConfig{};
  EXPECT_EQ(estimate_series(p).per_vcpu, 14u + 4u);  // host_kernel, host_user, guest_kernel, guest_user
  EXPECT_EQ(estimate_series(p).per_vm, 4u + 3u + 1u + 2u);  // lost by 3 reasons, throttles, emulator modes
  p.sampling->event.guest = GuestMode::kExclude;
  p.sampling->threads = SampleThreads::kVcpu;
  EXPECT_EQ(estimate_series(p).per_vcpu, 14u + 2u);
  EXPECT_EQ(estimate_series(p).per_vm, 4u + 3u + 1u);
}

TEST(SeriesEstimate, CheckConfigNamesEveryPolicyAndTheDefault) {
  AgentConfig config;
  config.policies.push_back(policy({{"task-clock", GuestMode::kAuto}}));
  config.default_policy = policy({});
  config.default_policy.name = "default";
  std::string text = describe_series(config);
  EXPECT_NE(text.find("  p: about 64 per VM of 4 vCPUs (4 + 15 per vCPU)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  default: about 60 per VM of 4 vCPUs (4 + 14 per vCPU)\n"), std::string::npos) << text;
}
