#pragma once
// Snapshot: everything one collection cycle measured, immutable once published. The
// exporters read only this; they never touch libvirt or the kernel.
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kvmprof {

struct ModeValue {
  std::string mode;  // "guest", "host_kernel", "host_user" or "all"
  double seconds = 0;
};

struct EventValue {
  std::string event;  // "task-clock", "kvm:kvm_pio"
  std::string mode;   // what was counted: "all" (no exclude bits)
  double value = 0;   // scaled for multiplexing
  // Hardware counters only: the PMU multiplexes them. Software events and tracepoints always run
  // while enabled, so their times would add series that say nothing.
  std::optional<double> enabled_seconds;
  std::optional<double> running_seconds;
};

// Samples of one (event, mode): mode as the sample's misc bits say, e.g. "guest_kernel", "host_kernel".
struct SampleValue {
  std::string event;
  std::string mode;
  uint64_t count = 0;
};

struct VcpuSample {
  unsigned index = 0;
  std::vector<ModeValue> cpu;  // either the split modes or "all", never both
  std::optional<double> wait_seconds;  // absent until its thread's schedstat was read
  std::map<std::string, uint64_t> exits;  // reason -> count; empty if no live source
  std::vector<EventValue> events;
  std::vector<SampleValue> samples;
};

struct VmSample {
  std::string name;
  std::string uuid;
  std::string policy;   // the policy that applies to it
  bool mapped = false;  // every vCPU thread found
  std::vector<VcpuSample> vcpus;
  std::vector<ModeValue> emulator_cpu;
  std::vector<EventValue> events;  // per-VM aggregation: sums over the vCPUs
  std::vector<SampleValue> emulator_samples;  // samples of its non-vCPU threads
  std::map<std::string, uint64_t> samples_lost;  // by reason; empty when the VM is not sampled
  std::optional<uint64_t> sample_throttles;      // absent when the VM is not sampled
};

// The entry of vCPU `index`, made in index order when missing.
inline VcpuSample& vcpu_sample(VmSample& vm, unsigned index) {
  auto it = std::lower_bound(vm.vcpus.begin(), vm.vcpus.end(), index,
                             [](const VcpuSample& v, unsigned i) { return v.index < i; });
  if (it == vm.vcpus.end() || it->index != index) it = vm.vcpus.insert(it, VcpuSample{index, {}, {}, {}, {}, {}});
  return *it;
}

// What a host limit (limits.max_counters / max_series) took away from a policy.
struct LimitAction {
  std::string policy;
  std::string action;  // "per_vm" (aggregated instead of per vCPU) or "dropped"
  std::string event;   // the dropped event; empty for per_vm
};

struct SourceStatus {
  std::string source;  // e.g. "proc_schedstat", "libvirt_vcpu_exits", "perf:kvm:kvm_exit"
  bool up = false;
  std::string reason;  // why not, in words an operator can act on
};

// One decision of the policy engine, exported as kvmprof_event_info.
struct EventInfo {
  std::string use = "count";  // "count" or "sample"
  std::string event;
  std::string policy;     // the policy that asked for it ("default" until per-VM policies)
  std::string guest;      // requested: auto, include, exclude, split, guest-only
  unsigned precise = 0;
  std::string status;     // ok, degraded, refused, unsupported
  std::string semantics;  // what is counted: all, host, guest, split; empty when not counted
  std::string reason;
  std::string attrs;  // the attr fields that decide what it counts or samples, perf stat -vv style
};

struct HistogramData {
  std::vector<double> bounds;    // upper bounds, seconds
  std::vector<uint64_t> counts;  // cumulative counts per bound
  uint64_t count = 0;
  double sum = 0;
};

// What the profiles keep (the profile store and the symbol caches) and what their bounds
// took away.
struct ProfileStoreStats {
  size_t samples = 0, stacks = 0;
  std::map<std::string, size_t> bytes;      // estimated, by part: samples, stacks, symbols
  std::map<std::string, uint64_t> dropped;  // samples, by reason: max_samples, max_stacks
};

struct Snapshot {
  double timestamp_seconds = 0;  // end of the cycle, Unix time
  bool libvirt_up = false;
  std::vector<VmSample> vms;
  std::vector<SourceStatus> sources;
  std::vector<EventInfo> event_info;
  std::vector<LimitAction> limit_actions;
  std::map<std::pair<std::string, std::string>, uint64_t> perf_open_errors;  // (event, errno)
  std::map<std::pair<std::string, std::string>, uint64_t> open_fallbacks;    // (event, ladder step)
  std::map<std::pair<std::string, std::string>, uint64_t> read_errors;       // (source, errno)
  std::map<std::string, uint64_t> discovery_errors;                          // reason
  uint64_t sample_ring_bytes = 0;  // locked memory of every sampling ring
  ProfileStoreStats profile_store;
  HistogramData collection_duration;
  bool config_reload_ok = true;
  double config_reload_success_timestamp = 0;
};

// Hands the last complete snapshot from the collector to scrapes without blocking either
// for longer than a pointer copy.
class SnapshotStore {
 public:
  void publish(std::shared_ptr<const Snapshot> snapshot) {
    std::lock_guard lock(mu_);
    current_ = std::move(snapshot);
  }
  std::shared_ptr<const Snapshot> latest() const {
    std::lock_guard lock(mu_);
    return current_;
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const Snapshot> current_;
};

}  // namespace kvmprof
