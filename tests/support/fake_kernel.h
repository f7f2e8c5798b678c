#pragma once
// Fake kernel personalities: PerfBackend implementations that answer perf_event_open the way
// a documented kernel does, for the hardware paths this machine (no hardware PMU) cannot
// exercise. Each rule cites the kernel source it reproduces. Opened events are real eventfds
// (so Fd ownership is real); reads return scripted counts.
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "agent/system/perf_backend.h"

namespace kvmprof::testing {

struct Rule {
  std::string source;  // kernel file/function or commit this rule reproduces
  std::function<int(const perf_event_attr&)> errno_for;  // 0 = this rule lets it pass
};

class FakeKernel final : public PerfBackend {
 public:
  FakeKernel(std::string name, std::vector<Rule> rules) : name_(std::move(name)), rules_(std::move(rules)) {}

  Result<Fd> open(perf_event_attr& attr, pid_t tid, int cpu, int group_fd) override;
  Result<size_t> read(const Fd& fd, std::span<std::byte> buf) override;
  Result<uint64_t> event_id(const Fd& fd) override;

  const std::string& name() const { return name_; }
  // Every open asked, with the errno given (0 = opened).
  std::vector<std::pair<perf_event_attr, int>> calls;
  // Scripted raw value for a counter, by its attr (see count_for).
  std::function<uint64_t(const perf_event_attr&)> count_for = [](const perf_event_attr&) { return 0; };
  uint64_t enabled_ns = 1'000'000'000, running_ns = 1'000'000'000;

 private:
  std::string name_;
  std::vector<Rule> rules_;
  std::map<int, perf_event_attr> open_;  // fd -> attr
  std::map<int, uint64_t> ids_;
  std::map<int, std::vector<int>> members_;  // leader fd -> member fds
  uint64_t next_id_ = 1;
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

}  // namespace kvmprof::testing
