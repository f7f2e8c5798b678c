#pragma once
// Fake kernel personalities: PerfBackend implementations that answer perf_event_open the way
// a documented kernel does, for the hardware paths this machine (no hardware PMU) cannot
// exercise. Each rule cites the kernel source it reproduces.
//
// Beyond the personality's attr rules, every personality models what the collector meets on
// real threads (each with its source in fake_kernel.cpp): group rules (one hardware PMU per
// group, the PMU's counters per group), threads that exited (ESRCH) or may not be traced
// (EACCES), and counts that grow as threads run, multiplexed or not. Opened events are real
// memfds named after their event id, so Fd ownership is real and a closed fd whose number is
// reused is never mistaken for the old event. Thread-safe: the agent plans on one thread and
// counts on another.
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/system/perf_backend.h"
#include "tests/support/ring_writer.h"

namespace kvmprof::testing {

struct Rule {
  std::string source;  // kernel file/function or commit this rule reproduces
  std::function<int(const perf_event_attr&)> errno_for;  // 0 = this rule lets it pass
};

class FakeKernel final : public PerfBackend {
 public:
  FakeKernel(std::string name, std::vector<Rule> rules, unsigned counters_per_group = 4)
      : name_(std::move(name)), rules_(std::move(rules)), counters_per_group_(counters_per_group) {}
  FakeKernel(FakeKernel&& other) noexcept;

  Result<Fd> open(perf_event_attr& attr, pid_t tid, int cpu, int group_fd) override;
  Result<size_t> read(const Fd& fd, std::span<std::byte> buf) override;
  Result<uint64_t> event_id(const Fd& fd) override;
  // Heap memory laid out as the kernel maps a ring (page 0 + data pages), written by sample().
  Result<RingMapping> map_ring(const Fd& fd, size_t data_pages) override;
  // The event stops: sample() writes nothing more into its ring (kernel/events/core.c perf_event_disable).
  Result<bool> disable(const Fd& fd) override;

  const std::string& name() const { return name_; }

  // Writes `n` samples into the ring of every open sampling event on `tid`, as the kernel does
  // when one fires (kernel/events/core.c perf_prepare_sample/perf_output_sample): misc gives
  // the mode, the time is CLOCK_MONOTONIC now. Returns how many records fit.
  size_t sample(pid_t tid, uint16_t misc, uint64_t ip, size_t n = 1, const std::vector<uint64_t>& callchain = {});
  // One record of raw bytes into the rings on `tid` (LOST_SAMPLES, THROTTLE, garbage).
  void write_record(pid_t tid, std::span<const std::byte> record);
  // Rings mapped now, and their bytes.
  size_t rings() const;
  size_t ring_bytes() const;
  // perf_event_mlock_kb + RLIMIT_MEMLOCK for an agent without CAP_IPC_LOCK: a mapping that
  // would pass it fails EPERM (kernel/events/core.c perf_mmap(): locked > lock_limit).
  size_t mlock_limit = SIZE_MAX;

  // A thread that exited: opens on it fail ESRCH; its open events keep their last values.
  void exit_thread(pid_t tid);
  // Opens on `tid` fail EACCES, as without ptrace access to it (or CAP_PERFMON).
  void deny(pid_t tid);
  void allow(pid_t tid);
  // Every open event on `tid` was enabled for `ns` more and on the PMU for `running` of them;
  // it counted count_for(attr) per second on the PMU. With `on_pmu` (a hybrid core type) the
  // thread ran on that core type: the other type's counters stay inactive, enabled but not
  // running (kernel/events/core.c event_filter_match); software events run everywhere.
  void run(pid_t tid, uint64_t ns, uint64_t running, std::optional<uint32_t> on_pmu = std::nullopt);
  // Events whose fds are still open.
  size_t open_events() const;
  // Every open asked, with the errno given (0 = opened).
  std::vector<std::pair<perf_event_attr, int>> calls() const;
  size_t reads() const;  // read() calls so far

  // An event's count per second on the PMU.
  std::function<uint64_t(const perf_event_attr&)> count_for = [](const perf_event_attr&) { return 0; };
  // An event opens as if it had already been enabled and running this long (and counted for
  // running_ns); tests that start counters from zero set both to 0.
  uint64_t enabled_ns = 1'000'000'000, running_ns = 1'000'000'000;
  // Each open takes this long, as tracepoint opens do (they wait for RCU).
  std::chrono::milliseconds open_delay{0};
  std::atomic<bool> throw_on_read{false};  // a bug in the read path: the exception escapes the collector
  std::atomic<int> read_errno{0};          // reads fail with this errno (0: they work)

 private:
  struct Event {
    perf_event_attr attr;
    pid_t tid;
    uint64_t leader;  // event id of the group leader (itself when it leads)
    uint64_t count, enabled, running;
    bool disabled = false;
  };

  struct Rings {  // shared with the mappings, which may outlive a moved-from FakeKernel
    std::mutex mu;
    std::map<uint64_t, std::shared_ptr<RingWriter>> by_event;  // by event id
    size_t bytes = 0;
  };
  // The rings of the open events on `tid`, with their event ids.
  std::vector<std::pair<uint64_t, std::shared_ptr<RingWriter>>> rings_of(pid_t tid) const;

  int check_group(const perf_event_attr& attr, pid_t tid, int group_fd) const;
  uint64_t id_of(int fd) const;
  std::set<uint64_t> live_ids() const;

  std::string name_;
  std::vector<Rule> rules_;
  unsigned counters_per_group_;
  mutable std::mutex mu_;
  std::map<uint64_t, Event> events_;  // by event id
  std::set<pid_t> exited_, denied_;
  std::vector<std::pair<perf_event_attr, int>> calls_;
  uint64_t next_id_ = 1;
  size_t reads_ = 0;
  std::shared_ptr<Rings> rings_ = std::make_shared<Rings>();
};

// The personalities the tests run against.
FakeKernel linux_3_1();         // before exclude_host/exclude_guest
FakeKernel linux_3_6();         // refuses precise without exclude_guest
FakeKernel linux_6_1_intel();   // accepts guest-inclusive PEBS but drops the guest part
FakeKernel linux_6_1_amd_ibs(); // IBS rejects exclude bits
FakeKernel linux_7_mediated();  // mediated vPMU active: guest-inclusive core events refused
FakeKernel linux_6_1_intel_hybrid();
FakeKernel no_hardware_pmu();   // this machine: hardware events ENOENT
std::vector<FakeKernel> all_personalities();

// The fixtures' PMU types (sysfs type files): "cpu"/"cpu_core", "cpu_atom", an uncore PMU.
inline constexpr uint32_t kCorePmuType = 4;
inline constexpr uint32_t kAtomPmuType = 10;
inline constexpr uint32_t kUncorePmuType = 14;

}  // namespace kvmprof::testing
