#pragma once
// ProfileStore: the samples of the last window, kept for profiles. The sampler adds what it
// drains; a profile request copies out what it needs under the store's own lock, a chunk of
// samples at a time, so the sampler (and through it the collection) waits at most for one
// chunk's copy, whatever the store's size.
//
// Bounded three ways (`profiles:` in agent.yaml): samples older than the window go; past
// max_samples the oldest go; callchains are interned in a table of at most max_stacks distinct
// stacks, and a new stack that finds the table full makes the oldest samples go until one
// stack is free. Samples are kept in arrival order over all VMs, so when a bound bites every
// VM's profile covers the same, shorter span (the profile says which).
#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/system/clock.h"
#include "agent/system/perf_record.h"
#include "exporters/snapshot.h"
#include "policy/agent_config.h"

namespace kvmprof {

// One sample as the sampler hands it over.
struct NewSample {
  uint64_t time_ns = 0;  // CLOCK_MONOTONIC
  pid_t pid = 0, tid = 0;
  std::optional<unsigned> vcpu;  // nullopt: an emulator or I/O thread
  SampleMode mode = SampleMode::kUnknown;
  uint64_t nanos = 0;  // the CPU time it stands for; 0 when the event's period is no time
  uint64_t ip = 0;     // the guest RIP for guest samples
  std::vector<uint64_t> kernel_stack, user_stack;  // leaf first; empty for guest samples
};

// How a VM is sampled, for its profile.
struct ProfileVmInfo {
  std::string event;           // "cpu-clock"
  uint64_t period_nanos = 0;   // one sample's nominal CPU time; 0 when unknown
  std::string guest_kallsyms;  // the policy's copy of the guest's /proc/kallsyms, or ""
};

// A callchain: the sample's IP, then its kernel and user frames, leaf first.
struct SampleStack {
  uint64_t ip = 0;
  std::vector<uint64_t> kernel, user;
};

// What a profile request takes out: the window's samples with the stacks they use.
struct ProfileWindow {
  struct Sample {
    uint64_t time_ns = 0;
    size_t vm = 0;     // index into vms
    size_t stack = 0;  // index into stacks
    pid_t pid = 0, tid = 0;
    std::optional<unsigned> vcpu;
    SampleMode mode = SampleMode::kUnknown;
    uint64_t nanos = 0;
  };
  std::vector<std::pair<std::string, ProfileVmInfo>> vms;  // (uuid, info)
  std::vector<SampleStack> stacks;
  std::vector<Sample> samples;
  // Samples are complete from this time on: the store's start, or the newest sample a bound
  // (max_samples, max_stacks) dropped.
  uint64_t complete_since_ns = 0;
};

class ProfileStore {
 public:
  // `start_ns`: CLOCK_MONOTONIC now; no sample is older.
  explicit ProfileStore(ProfileLimits limits = {}, uint64_t start_ns = monotonic_ns());
  void set_limits(const ProfileLimits& limits);  // at a reload; trims at once
  std::chrono::seconds window_length() const;

  void set_vm(const std::string& uuid, ProfileVmInfo info);
  bool has_vm(const std::string& uuid) const;  // sampled now (set_vm, and not forgotten since)
  void forget_vm(const std::string& uuid);  // the VM stopped, or its policy no longer samples
  // Takes the stacks. A VM not set (or forgotten since: it stopped) keeps none.
  void add(const std::string& uuid, std::vector<NewSample>& batch);
  void trim(uint64_t now_ns);  // drops what is older than the window

  // The samples at or after since_ns of the VMs in `uuids` (every VM when empty).
  ProfileWindow window(uint64_t since_ns, const std::set<std::string>& uuids = {}) const;
  ProfileStoreStats stats() const;

 private:
  struct Stored {
    uint64_t seq;  // in arrival order: where a chunked copy goes on
    uint64_t time_ns;
    uint64_t nanos;
    uint32_t vm, stack;
    pid_t pid, tid;
    int32_t vcpu;  // -1: not a vCPU
    SampleMode mode;
  };
  struct Interned {
    std::vector<uint64_t> frames;  // ip, kernel frames, user frames
    uint32_t kernel = 0;           // how many kernel frames
    uint32_t refs = 0;             // 0: free
    uint32_t generation = 0;       // counts the slot's reuses: a chunked copy tells stacks apart
  };
  static constexpr size_t kChunk = 16384;  // samples copied per hold of the lock

  uint32_t vm_index(const std::string& uuid);
  uint32_t intern(std::vector<uint64_t>& frames, uint32_t kernel);
  // Copies samples from seq `cursor` on, one chunk; returns where the next chunk starts, or
  // nothing at the end.
  std::optional<uint64_t> copy_chunk(uint64_t cursor, uint64_t since_ns, const std::set<std::string>& uuids,
                                     ProfileWindow& out, std::map<std::string, size_t>& vms,
                                     std::unordered_map<uint64_t, size_t>& stacks) const;
  void pop_oldest(const char* reason);
  void release(uint32_t stack);
  SampleStack stack_of(uint32_t id) const;

  mutable std::mutex mu_;
  ProfileLimits limits_;
  std::vector<std::pair<std::string, ProfileVmInfo>> vms_;  // by index; a forgotten VM's slot is reused
  std::map<std::string, uint32_t> vm_ids_;
  std::vector<uint32_t> free_vms_;
  std::deque<Stored> samples_;  // by seq
  uint64_t next_seq_ = 0;
  uint64_t complete_since_ns_;
  std::vector<Interned> stacks_;
  std::vector<uint32_t> free_stacks_;
  std::unordered_multimap<uint64_t, uint32_t> stack_ids_;  // frames hash -> stack
  size_t live_stacks_ = 0, stack_frames_ = 0;
  std::map<std::string, uint64_t> dropped_;
};

}  // namespace kvmprof
