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

ProfileLimits limits(size_t samples, size_t stacks) {
  ProfileLimits l;
  l.max_samples = samples;
  l.max_stacks = stacks;
  return l;
}

TEST(ProfileStore, StacksAreSharedAndTheWindowFiltersByTimeAndVm) {
  ProfileStore store({}, 0);
  store.set_vm(kA, {"cpu-clock", 10'101'010, ""});
  store.set_vm(kB, {"cpu-clock", 10'101'010, ""});
  add(store, kA, {at(1 * kSecond, 1, {1, 2}), at(2 * kSecond, 1, {1, 2}), at(3 * kSecond, 7)});
  add(store, kB, {at(3 * kSecond, 1, {1, 2})});
  EXPECT_EQ(store.stats().stacks, 2u);
  auto w = store.window(2 * kSecond, {kA});
  ASSERT_EQ(w.samples.size(), 2u);
  ASSERT_EQ(w.vms.size(), 1u);
  EXPECT_EQ(w.vms[0].second.period_nanos, 10'101'010u);
  EXPECT_EQ(w.stacks.size(), 2u);
  EXPECT_EQ(w.stacks[w.samples[0].stack].kernel, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(w.stacks[w.samples[1].stack].ip, 7u);
  EXPECT_EQ(w.complete_since_ns, 0u);  // nothing was dropped: complete since the store started
  add(store, "00000000-0000-0000-0000-0000000000ff", {at(4 * kSecond, 1)});  // a VM never set (or stopped)
  EXPECT_EQ(store.stats().samples, 4u);
}

TEST(ProfileStore, ABoundThatDropsSamplesMovesWhereTheWindowIsCompleteAndIdleTimeDoesNot) {
  ProfileStore store(limits(1000, 100), 5 * kSecond);
  store.set_vm(kA, {});
  add(store, kA, {at(100 * kSecond, 1)});  // idle for 95 s, then a sample: still complete since 5 s
  EXPECT_EQ(store.window(0).complete_since_ns, 5 * kSecond);
  std::vector<NewSample> batch;
  for (uint64_t i = 0; i < 1000; ++i) batch.push_back(at(200 * kSecond + i, 2));
  store.add(kA, batch);  // the one at 100 s goes (max_samples)
  EXPECT_EQ(store.window(0).complete_since_ns, 100 * kSecond);
}

TEST(ProfileStore, AWindowLargerThanOneChunkKeepsEverySampleAndSharesItsStacks) {
  ProfileStore store(limits(100'000, 100), 0);
  store.set_vm(kA, {});
  store.set_vm(kB, {});
  std::vector<NewSample> a, b;
  for (uint64_t i = 0; i < 40'000; ++i) (i % 2 ? a : b).push_back(at(kSecond + i, i % 3, {i % 3}));
  store.add(kA, a);
  store.add(kB, b);
  auto w = store.window(0);
  EXPECT_EQ(w.samples.size(), 40'000u);
  EXPECT_EQ(w.stacks.size(), 3u);
  EXPECT_EQ(w.vms.size(), 2u);
  size_t of_b = 0;
  for (const auto& s : w.samples) {
    of_b += w.vms[s.vm].first == kB;
    EXPECT_EQ(w.stacks[s.stack].ip, w.stacks[s.stack].kernel.at(0));
  }
  EXPECT_EQ(of_b, 20'000u);
  EXPECT_EQ(store.window(0, {kB}).samples.size(), 20'000u);
}

TEST(ProfileStore, SamplesOlderThanTheWindowGo) {
  ProfileLimits l;
  l.window = std::chrono::seconds(10);
  ProfileStore store(l, 0);
  store.set_vm(kA, {});
  add(store, kA, {at(1 * kSecond, 1), at(5 * kSecond, 2)});
  store.trim(12 * kSecond);
  auto w = store.window(0);
  ASSERT_EQ(w.samples.size(), 1u);
  EXPECT_EQ(w.stacks[0].ip, 2u);
  EXPECT_EQ(store.stats().stacks, 1u);      // the old stack was freed
  EXPECT_TRUE(store.stats().dropped.empty());  // ageing out is no drop
}

TEST(ProfileStore, PastMaxSamplesTheOldestGoAndAreCounted) {
  ProfileStore store(limits(1000, 100), 0);
  store.set_vm(kA, {});
  std::vector<NewSample> batch;
  for (uint64_t i = 0; i < 1500; ++i) batch.push_back(at(kSecond + i, i % 10));
  store.add(kA, batch);
  auto w = store.window(0);
  ASSERT_EQ(w.samples.size(), 1000u);
  EXPECT_EQ(w.samples.front().time_ns, kSecond + 500);
  EXPECT_EQ(store.stats().dropped.at("max_samples"), 500u);
}

TEST(ProfileStore, ANewStackInAFullTableMakesTheOldestSamplesGo) {
  ProfileStore store(limits(1000, 100), 0);
  store.set_vm(kA, {});
  std::vector<NewSample> batch;
  for (uint64_t i = 0; i < 150; ++i) batch.push_back(at(kSecond + i, 1000 + i));  // 150 distinct stacks
  store.add(kA, batch);
  auto stats = store.stats();
  EXPECT_EQ(stats.stacks, 100u);
  EXPECT_EQ(stats.samples, 100u);
  EXPECT_EQ(stats.dropped.at("max_stacks"), 50u);
  EXPECT_EQ(store.window(0).samples.front().time_ns, kSecond + 50);
  EXPECT_GT(stats.bytes.at("stacks"), 0u);
}

TEST(ProfileStore, LowerLimitsAtAReloadTrimAtOnceAndAForgottenVmsSlotIsReused) {
  ProfileStore store(limits(1000, 100), 0);
  store.set_vm(kA, {});
  std::vector<NewSample> batch;
  for (uint64_t i = 0; i < 50; ++i) batch.push_back(at(kSecond + i, i));
  store.add(kA, batch);
  store.set_limits(limits(1000, 20));
  EXPECT_EQ(store.stats().stacks, 20u);
  EXPECT_EQ(store.stats().dropped, (std::map<std::string, uint64_t>{{"max_stacks", 30}}));
  store.forget_vm(kA);
  EXPECT_EQ(store.stats().samples, 0u);
  EXPECT_EQ(store.stats().stacks, 0u);
  store.set_vm(kB, {"cycles", 0, "/guest.kallsyms"});
  add(store, kB, {at(kSecond, 1)});
  auto w = store.window(0);
  ASSERT_EQ(w.vms.size(), 1u);
  EXPECT_EQ(w.vms[0].first, kB);
  EXPECT_EQ(w.vms[0].second.guest_kallsyms, "/guest.kallsyms");
}

}  // namespace
}  // namespace kvmprof
