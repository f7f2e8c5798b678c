#pragma once
// Helpers for collector tests: plans as the agent makes them, domain records, snapshot lookups,
// and a 2-vCPU VM made of files counted by the fake kernel.
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>

#include "agent/collect/collector.h"
#include "agent/system/host_probe.h"
#include "tests/support/collect.h"
#include "tests/support/fake_kernel.h"
#include "tests/support/fake_qemu.h"
#include "tests/support/file_qemu.h"
#include "tests/support/series.h"

namespace kvmprof::testing {

using Clock = Collector::Clock;
using namespace std::chrono_literals;

inline size_t open_fds() {
  namespace fs = std::filesystem;
  return static_cast<size_t>(std::distance(fs::directory_iterator("/proc/self/fd"), fs::directory_iterator()));
}

inline Policy policy(const std::string& name, std::vector<std::string> events) {
  Policy p;
  p.name = name;
  for (const auto& e : events) p.events.push_back({std::get<EventSpec>(parse_event_spec(e)), GuestMode::kAuto, {}});
  return p;
}

// A default policy counting `events`, planned for this host as the agent plans it, read on every collect().
inline CollectorPlan plan_for(PerfBackend& perf, const HostRoot& root, std::vector<std::string> events = {"task-clock"},
                       std::vector<Policy> named = {}) {
  HostModel host = probe_host(HostRoot("/"));
  auto plan_of = [&](const Policy& p) { return make_policy_plan(p, plan_events(root, perf, p.events, host, builtin_quirks()), 4); };
  CollectorPlan out{{}, plan_of(policy("default", std::move(events))), {}, 0ms, {}};
  for (const auto& p : named) out.policies.push_back(plan_of(p));
  return out;
}

inline DomainRecord domain(unsigned vcpus, int id = 1, std::string uuid = kUuid) {
  return DomainRecord{"vm \"1\"", std::move(uuid), id, vcpus, "", {}, {}};
}

inline const VcpuSample* vcpu(const Snapshot& s, unsigned index) {
  for (const auto& v : s.vms.at(0).vcpus) {
    if (v.index == index) return &v;
  }
  return nullptr;
}

inline const SourceStatus& source(const Snapshot& s, const std::string& name) {
  for (const auto& src : s.sources) {
    if (src.source == name) return src;
  }
  throw std::runtime_error("no source " + name);
}

inline double cpu_total(const VcpuSample& v) {
  double sum = 0;
  for (const auto& m : v.cpu) sum += m.seconds;
  return sum;
}

// A 1-vCPU VM whose vCPU is a real (spinning) thread of this process, counted by the real
// kernel, with its collector planned as the agent plans it.
struct RealVm {
  RealVm() {
    qemu.add(cpu0->tid());
    collector.emplace(qemu.root(), perf, plan_for(perf, qemu.root()));
  }

  QemuFixture qemu;
  std::unique_ptr<FakeQemuThread> cpu0 = std::make_unique<FakeQemuThread>("CPU 0/KVM");
  RealPerfBackend perf;
  std::optional<Collector> collector;
};

// A VM of two vCPU threads and one emulator thread made of files, counted by a fake kernel.
struct FileVm {
  FileQemu qemu{kUuid};
  FakeKernel kernel = no_hardware_pmu();
  FileVm() {
    kernel.count_for = [](const perf_event_attr&) { return 1'000'000; };  // 1e6 per second on the PMU
    kernel.enabled_ns = kernel.running_ns = 0;
    qemu.add_thread(101, "CPU 0/KVM");
    qemu.add_thread(102, "CPU 1/KVM");
    qemu.add_thread(103, "IO mon_iothread");
  }
  // Both vCPU threads run `ns` (procfs and perf agree).
  void run(uint64_t ns) {
    for (pid_t tid : {101, 102}) {
      qemu.run(tid, ns);
      kernel.run(tid, ns, ns);
    }
  }
};


}  // namespace kvmprof::testing
