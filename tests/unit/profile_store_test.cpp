// ProfileStore: the window of samples for profiles, bounded by time, samples and stacks.
#include "agent/profile/profile_store.h"

#include <gtest/gtest.h>

namespace kvmprof {
namespace {

constexpr uint64_t kSecond = 1'000'000'000;
const std::string kA = "00000000-0000-0000-0000-00000000000a", kB = "00000000-0000-0000-0000-00000000000b";

NewSample at(uint64_t time_ns, uint64_t ip, std::vector<uint64_t> kernel = {}) {
  return NewSample{time_ns, 10, 11, 0u, SampleMode::kHostKernel, 1000, ip, std::move(kernel), {}};
}

void add(ProfileStore& store, const std::string& vm, std::vector<NewSample> batch) { store.add(vm, batch); }

auto all = [](const std::string&) { return true; };

ProfileLimits limits(size_t samples, size_t stacks) {
  ProfileLimits l;
  l.max_samples = samples;
  l.max_stacks = stacks;
  return l;
}

TEST(ProfileStore, StacksAreSharedAndTheWindowFiltersByTimeAndVm) {
  ProfileStore store;
  store.set_vm(kA, {"cpu-clock", 10'101'010, ""});
  add(store, kA, {at(1 * kSecond, 1, {1, 2}), at(2 * kSecond, 1, {1, 2}), at(3 * kSecond, 7)});
  add(store, kB, {at(3 * kSecond, 1, {1, 2})});
  EXPECT_EQ(store.stats().stacks, 2u);
  auto w = store.window(2 * kSecond, [](const std::string& uuid) { return uuid == kA; });
  ASSERT_EQ(w.samples.size(), 2u);
  ASSERT_EQ(w.vms.size(), 1u);
  EXPECT_EQ(w.vms[0].second.period_nanos, 10'101'010u);
  EXPECT_EQ(w.stacks.size(), 2u);
  EXPECT_EQ(w.stacks[w.samples[0].stack].kernel, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(w.stacks[w.samples[1].stack].ip, 7u);
  EXPECT_EQ(w.oldest_ns, 1 * kSecond);
}

TEST(ProfileStore, SamplesOlderThanTheWindowGo) {
  ProfileLimits l;
  l.window = std::chrono::seconds(10);
  ProfileStore store(l);
  add(store, kA, {at(1 * kSecond, 1), at(5 * kSecond, 2)});
  store.trim(12 * kSecond);
  auto w = store.window(0, all);
  ASSERT_EQ(w.samples.size(), 1u);
  EXPECT_EQ(w.stacks[0].ip, 2u);
  EXPECT_EQ(store.stats().stacks, 1u);      // the old stack was freed
  EXPECT_TRUE(store.stats().dropped.empty());  // ageing out is no drop
}

TEST(ProfileStore, PastMaxSamplesTheOldestGoAndAreCounted) {
  ProfileStore store(limits(1000, 100));
  std::vector<NewSample> batch;
  for (uint64_t i = 0; i < 1500; ++i) batch.push_back(at(kSecond + i, i % 10));
  store.add(kA, batch);
  auto w = store.window(0, all);
  ASSERT_EQ(w.samples.size(), 1000u);
  EXPECT_EQ(w.samples.front().time_ns, kSecond + 500);
  EXPECT_EQ(store.stats().dropped.at("max_samples"), 500u);
}

TEST(ProfileStore, ANewStackInAFullTableMakesTheOldestSamplesGo) {
  ProfileStore store(limits(1000, 100));
  std::vector<NewSample> batch;
  for (uint64_t i = 0; i < 150; ++i) batch.push_back(at(kSecond + i, 1000 + i));  // 150 distinct stacks
  store.add(kA, batch);
  auto stats = store.stats();
  EXPECT_EQ(stats.stacks, 100u);
  EXPECT_EQ(stats.samples, 100u);
  EXPECT_EQ(stats.dropped.at("max_stacks"), 50u);
  EXPECT_EQ(store.window(0, all).samples.front().time_ns, kSecond + 50);
  EXPECT_GT(stats.bytes.at("stacks"), 0u);
}

TEST(ProfileStore, LowerLimitsAtAReloadTrimAtOnceAndAForgottenVmsSlotIsReused) {
  ProfileStore store(limits(1000, 100));
  std::vector<NewSample> batch;
  for (uint64_t i = 0; i < 50; ++i) batch.push_back(at(kSecond + i, i));
  store.add(kA, batch);
  store.set_limits(limits(1000, 20));
  EXPECT_EQ(store.stats().stacks, 20u);
  store.forget_vm(kA);
  EXPECT_EQ(store.stats().samples, 0u);
  EXPECT_EQ(store.stats().stacks, 0u);
  store.set_vm(kB, {"cycles", 0, "/guest.kallsyms"});
  add(store, kB, {at(kSecond, 1)});
  auto w = store.window(0, all);
  ASSERT_EQ(w.vms.size(), 1u);
  EXPECT_EQ(w.vms[0].first, kB);
  EXPECT_EQ(w.vms[0].second.guest_kallsyms, "/guest.kallsyms");
}

}  // namespace
}  // namespace kvmprof
