#pragma once
// ProfileStore: the samples of the last window, kept for profiles. The sampler adds what it
// drains; a profile request copies out what it needs under the store's own lock, so building
// a profile never holds the sampler (or the collection) up.
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
#include <string>
#include <unordered_map>
#include <vector>

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
  uint64_t oldest_ns = 0;  // the oldest sample the store holds (of any VM); 0 when empty
};

class ProfileStore {
 public:
  explicit ProfileStore(ProfileLimits limits = {});
  void set_limits(const ProfileLimits& limits);  // at a reload; trims at once
  std::chrono::seconds window_length() const;

  void set_vm(const std::string& uuid, ProfileVmInfo info);
  bool has_vm(const std::string& uuid) const;  // sampled now (set_vm, and not forgotten since)
  void forget_vm(const std::string& uuid);  // the VM stopped, or its policy no longer samples
  void add(const std::string& uuid, std::vector<NewSample>& batch);  // takes the stacks
  void trim(uint64_t now_ns);  // drops what is older than the window

  // The samples at or after since_ns of the VMs `wanted` accepts (by UUID).
  template <class Wanted>
  ProfileWindow window(uint64_t since_ns, Wanted wanted) const;
  ProfileStoreStats stats() const;

 private:
  struct Stored {
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
  };

  uint32_t vm_index(const std::string& uuid);
  std::optional<uint32_t> intern(std::vector<uint64_t>& frames, uint32_t kernel);
  void pop_oldest(const char* reason);
  void release(uint32_t stack);
  void trim_locked(uint64_t now_ns);
  SampleStack stack_of(uint32_t id) const;

  mutable std::mutex mu_;
  ProfileLimits limits_;
  std::vector<std::pair<std::string, ProfileVmInfo>> vms_;  // by index; a forgotten VM's slot is reused
  std::map<std::string, uint32_t> vm_ids_;
  std::vector<uint32_t> free_vms_;
  std::deque<Stored> samples_;
  std::vector<Interned> stacks_;
  std::vector<uint32_t> free_stacks_;
  std::unordered_multimap<uint64_t, uint32_t> stack_ids_;  // frames hash -> stack
  size_t live_stacks_ = 0, stack_frames_ = 0;
  std::map<std::string, uint64_t> dropped_;
};

template <class Wanted>
ProfileWindow ProfileStore::window(uint64_t since_ns, Wanted wanted) const {
  std::lock_guard lock(mu_);
  ProfileWindow out;
  out.oldest_ns = samples_.empty() ? 0 : samples_.front().time_ns;
  std::vector<std::optional<size_t>> vm_map(vms_.size());
  std::vector<bool> vm_wanted(vms_.size());
  for (size_t i = 0; i < vms_.size(); ++i) vm_wanted[i] = wanted(vms_[i].first);
  std::unordered_map<uint32_t, size_t> stacks;
  for (const Stored& s : samples_) {
    if (s.time_ns < since_ns || !vm_wanted[s.vm]) continue;
    auto& vm = vm_map[s.vm];
    if (!vm) {
      vm = out.vms.size();
      out.vms.push_back(vms_[s.vm]);
    }
    auto [it, fresh] = stacks.try_emplace(s.stack, out.stacks.size());
    if (fresh) out.stacks.push_back(stack_of(s.stack));
    out.samples.push_back({s.time_ns, *vm, it->second, s.pid, s.tid,
                           s.vcpu < 0 ? std::nullopt : std::optional<unsigned>(static_cast<unsigned>(s.vcpu)), s.mode,
                           s.nanos});
  }
  return out;
}

}  // namespace kvmprof
