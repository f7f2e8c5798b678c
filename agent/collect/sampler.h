#pragma once
// Sampler: the sampling side of the thread lifecycle. Every thread its VM's policy samples
// (vCPU threads, or all of QEMU's threads) gets the policy's sampling event, one per core PMU,
// each with its own ring buffer. The rings are drained by the sampler thread when the kernel
// wakes it (watermark at half the ring, through epoll) and by every collection cycle, so a
// long interval never overruns a ring; a ring is drained once more before its fd is closed.
//
// Each sample counts under its vCPU (or the VM's emulator threads), its event and the mode its
// misc bits give; what the kernel reports lost (ring full, dropped in the kernel), records that
// do not decode, and throttling are counted per VM. The samples go to the ProfileStore for
// profiles. All of it lives under one lock: the collection loop announces threads and reads
// totals, the sampler thread drains.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <array>
#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/collect/backoff.h"
#include "agent/profile/profile_store.h"
#include "agent/collect/thread_consumer.h"
#include "agent/system/fd.h"
#include "agent/system/perf_record.h"
#include "agent/system/perf_ring.h"
#include "exporters/snapshot.h"

namespace kvmprof {

// What really happened to the sampling event on the threads followed now.
struct SamplingHealth {
  size_t open = 0;     // threads with their rings open
  size_t refused = 0;  // threads whose event or ring the kernel refused
  int last_errno = 0;
  bool mmap_refused = false;  // the last refusal was the ring's mmap (locked memory)
};

class Sampler final : public ThreadConsumer {
 public:
  using Clock = std::chrono::steady_clock;
  Sampler(PerfBackend& perf, ErrorCounts& open_errors, ProfileStore& profiles);

  void thread_added(const VmThread& thread, const std::shared_ptr<const PolicyPlan>& plan) override;
  void thread_gone(const VmThread& thread) override;
  void plan_changed(const std::string& vm, const std::shared_ptr<const PolicyPlan>& plan) override;
  void vm_gone(const std::string& vm) override;

  // Drains every ring, and opens again the refused ones whose backoff is over (the cycle).
  void drain(Clock::time_point now = Clock::now());
  // The sampler thread: waits up to `timeout` for a ring to pass its watermark (or wake()),
  // then drains the ready rings; every ring when the wait timed out.
  void wait_and_drain(std::chrono::milliseconds timeout);
  void wake();  // ends a wait at once (to stop the sampler thread)

  // The VM's sample counts: per vCPU with a thread now, its emulator threads, and what was lost.
  void fill(const std::string& vm, VmSample& out) const;
  // By sampling event: open and refused threads.
  std::map<std::string, SamplingHealth> health() const;
  size_t fd_count() const;
  size_t mapped_bytes() const;
  // The locked memory mapped when the kernel first refused a ring's mmap with EPERM: a ceiling
  // for limits.max_ring_bytes, so the lowest priority stops sampling first.
  std::optional<size_t> memlock_ceiling() const;
  void forget_memlock_ceiling();  // at a reload: the operator may have raised the limit

 private:
  using ModeCounts = std::array<uint64_t, 6>;  // samples by SampleMode
  struct Ring {
    uint64_t key = 0;  // epoll data: the ring is looked up again, never dereferenced stale
    Fd fd;
    RingMapping mapping;
    std::unique_ptr<RingReader> reader;
    RecordLayout layout;
    bool clock = false;      // cpu-clock or task-clock: a sample's period is nanoseconds
    bool monotonic = false;  // sample times are CLOCK_MONOTONIC (use_clockid)
    uint64_t nominal_nanos = 0;  // one sample's CPU time at the sampling frequency
  };
  struct Thread {
    VmThread thread;
    std::vector<Ring> rings;  // one per PMU of the event; none while refused or not sampled
    Backoff retry{std::chrono::seconds(1), std::chrono::minutes(5)};
    int err = 0;
    bool mmap_refused = false;
  };
  struct Vm {
    std::shared_ptr<const PolicyPlan> plan;
    std::map<pid_t, Thread> threads;  // every thread of the VM, sampled or not (a reload may change which)
    std::map<unsigned, std::map<std::string, ModeCounts>> vcpus;  // by vCPU index, then event: never decrease
    std::map<std::string, ModeCounts> emulator;                    // by event
    std::map<std::string, uint64_t> lost;  // by reason
    uint64_t throttles = 0;
  };

  static bool sampling_on(const PolicyPlan* plan);
  static bool samples(const PolicyPlan* plan, const VmThread& thread);
  void open_all(Vm& vm, Clock::time_point now, bool only_due);
  void open(Vm& vm, Thread& thread, Clock::time_point now);
  void close(Vm& vm, Thread& thread);
  void drain_vm(Vm& vm);
  void drain_ring(Vm& vm, const Thread& thread, Ring& ring);
  void take(Vm& vm, const Thread& thread, ModeCounts& counts, std::span<const std::byte> record, const Ring& ring,
            std::vector<NewSample>& batch);
  void use_plan(const std::string& uuid, Vm& vm, const std::shared_ptr<const PolicyPlan>& plan);
  void watch(const Ring& ring);

  PerfBackend& perf_;
  ErrorCounts& open_errors_;  // (event, errno)
  ProfileStore& profiles_;
  const size_t page_size_;
  Fd epoll_, wake_;
  mutable std::mutex mu_;
  std::map<std::string, Vm> vms_;
  std::map<uint64_t, std::pair<std::string, pid_t>> rings_;  // ring key -> (VM, thread)
  uint64_t next_key_ = 1;
  size_t mapped_ = 0;
  std::optional<size_t> memlock_ceiling_;
};

// The sampler thread: drains rings as the kernel wakes it (a ring half full), and all of them
// when 10 s pass without a wakeup; the collection cycle drains every ring too. Few wakeups keep
// its CPU per sample low. Stopped and joined on destruction.
class SamplerThread {
 public:
  explicit SamplerThread(Sampler& sampler) : sampler_(sampler), thread_([this] { run(); }) {}
  ~SamplerThread() {
    stopping_ = true;
    sampler_.wake();
    thread_.join();
  }
  SamplerThread(const SamplerThread&) = delete;
  SamplerThread& operator=(const SamplerThread&) = delete;

 private:
  void run() {
    while (!stopping_) sampler_.wait_and_drain(std::chrono::seconds(10));
  }
  Sampler& sampler_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace kvmprof
