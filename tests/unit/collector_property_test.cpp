// Property: no exported counter decreases while its series lives, and no series is exported
// twice, whatever happens between cycles. Random sequences (fixed seeds) of reloads, thread
// exits and replacements, vCPU hot-unplug and re-plug, procfs and perf read errors, multiplexing ratios, libvirt outages, VM
// restarts and host limits are driven through the collector on a file-backed QEMU and the fake
// kernel, on a split-capable Intel host and on a hybrid one; every cycle is scraped and
// compared with the one before.
#include <gtest/gtest.h>

#include <random>

#include "agent/collect/collector.h"
#include "tests/support/collect.h"
#include "tests/support/fake_kernel.h"
#include "tests/support/file_qemu.h"
#include "tests/support/fixtures.h"
#include "tests/support/series.h"

using namespace kvmprof;
using namespace kvmprof::testing;
using namespace std::chrono_literals;

namespace {

const std::string kVmUuid = "3cd4a570-41dc-49b4-9ff4-5bb95413e660";
const std::vector<std::pair<std::string, GuestMode>> kEvents{
    {"cycles", GuestMode::kSplit}, {"instructions", GuestMode::kAuto}, {"task-clock", GuestMode::kAuto},
    {"page-faults", GuestMode::kAuto}, {"branches", GuestMode::kExclude}};

struct World {
  explicit World(const std::string& cpu, FakeKernel k, uint32_t seed)
      : kernel(std::move(k)), host(fixture(cpu)), hybrid(host.core_pmus().size() > 1), rng(seed) {
    kernel.enabled_ns = kernel.running_ns = 0;
    kernel.count_for = [](const perf_event_attr& a) { return 1000 + a.config % 7 * 100 + a.exclude_guest * 10; };
    for (unsigned i = 0; i < 3; ++i) add_vcpu(i);
    qemu.add_thread(next_tid++, "IO mon_iothread");
  }

  void add_vcpu(unsigned index) {
    pid_t tid = next_tid++;
    qemu.add_thread(tid, "CPU " + std::to_string(index) + "/KVM");
    vcpus[index] = tid;
  }

  CollectorPlan random_plan() {
    Policy p;
    p.name = "default";
    for (const auto& [spec, guest] : kEvents) {
      if (pick(2) || p.events.empty()) p.events.push_back({std::get<EventSpec>(parse_event_spec(spec)), guest, {}});
    }
    p.aggregation = pick(4) == 0 ? Aggregation::kPerVm : Aggregation::kPerVcpu;
    CollectorPlan plan{{}, make_policy_plan(p, plan_events(qemu.root(), kernel, p.events, host, builtin_quirks()), 4), {}, 0ms, {}};
    if (pick(3) == 0) plan.limits.max_counters = 2 + pick(12);
    if (pick(3) == 0) plan.limits.max_series = 15 + pick(40);
    return plan;
  }

  // Every vCPU thread runs; its counters are on the PMU for a random share (multiplexing), on
  // a random core type on a hybrid host.
  void run() {
    for (auto [index, tid] : vcpus) {
      uint64_t ns = 1'000'000 * (1 + pick(1000));
      qemu.run(tid, ns);
      uint64_t running = ns * (1 + pick(10)) / 10;
      std::optional<uint32_t> core;
      if (hybrid) core = pick(2) ? kCorePmuType : kAtomPmuType;
      kernel.run(tid, ns, running, core);
    }
    for (auto& [index, count] : exits) count += pick(50);
  }

  void replace_vcpu_thread() {
    unsigned index = std::next(vcpus.begin(), pick(static_cast<unsigned>(vcpus.size())))->first;
    kernel.exit_thread(vcpus[index]);
    qemu.remove_thread(vcpus[index]);
    add_vcpu(index);
  }

  void unplug_or_plug() {  // virsh setvcpus --live: the last vCPU's thread goes, or comes back
    unsigned last = static_cast<unsigned>(vcpus.size()) - 1;
    if (vcpus.size() == 3 || (vcpus.size() > 1 && pick(2))) {
      kernel.exit_thread(vcpus[last]);
      qemu.remove_thread(vcpus[last]);
      vcpus.erase(last);
    } else {
      add_vcpu(last + 1);
    }
  }

  void restart() {  // a new domain id, new threads for every vCPU, KVM's exit counts from zero
    ++id;
    for (auto& [index, count] : exits) count = 0;
    for (auto [index, tid] : vcpus) {
      kernel.exit_thread(tid);
      qemu.remove_thread(tid);
    }
    vcpus.clear();
    for (unsigned i = 0; i < 3; ++i) add_vcpu(i);
  }

  std::vector<DomainRecord> domains() const {
    DomainRecord r{"vm", kVmUuid, id, static_cast<unsigned>(vcpus.size()), "", {}, {}};
    for (const auto& [index, count] : exits) r.exits[index]["all"] = count;
    return {r};
  }

  unsigned pick(unsigned n) { return std::uniform_int_distribution<unsigned>(0, n - 1)(rng); }

  FileQemu qemu{kVmUuid};
  FakeKernel kernel;
  HostModel host;
  bool hybrid;
  std::mt19937 rng;
  std::map<unsigned, pid_t> vcpus;
  std::map<unsigned, uint64_t> exits{{0, 0}, {1, 0}, {2, 0}};
  pid_t next_tid = 100;
  int id = 1;
};

void check_monotonic(const std::string& cpu, FakeKernel (*kernel)(), uint32_t seed) {
  World w(cpu, kernel(), seed);
  Collector collector(w.qemu.root(), w.kernel, w.random_plan());
  auto now = Collector::Clock::now();
  std::map<SeriesKey, double> last;
  size_t compared = 0;
  int outage = 0;
  for (int step = 0; step < 150; ++step) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " step " + std::to_string(step));
    switch (w.pick(14)) {
      case 0: collector.apply(w.random_plan()); break;
      case 1: w.replace_vcpu_thread(); break;
      case 2: w.qemu.corrupt(w.vcpus.begin()->second); break;
      case 3: outage = 1 + static_cast<int>(w.pick(4)); break;
      case 4: w.restart(); break;
      case 5:
      case 6: w.unplug_or_plug(); break;
      case 7: w.kernel.read_errno = EIO; break;  // this cycle's perf reads fail
      default: break;
    }
    w.run();
    now += 1s;
    Snapshot s = outage-- > 0 ? collect_without_libvirt(collector, now) : collect(collector, w.domains(), now);
    w.kernel.read_errno = 0;
    std::map<SeriesKey, double> current;
    ASSERT_NO_THROW(current = series(s));
    for (const auto& [key, value] : current) {
      if (!key.first.ends_with("_total")) continue;
      auto before = last.find(key);
      if (before == last.end()) continue;
      ++compared;
      ASSERT_GE(value, before->second) << key.first << " decreased";
    }
    last = std::move(current);
  }
  EXPECT_GT(compared, 1000u);  // the property was really exercised
}

}  // namespace

TEST(CollectorProperty, NoCounterDecreasesOnASplitCapableIntelHost) {
  for (uint32_t seed = 1; seed <= 8; ++seed) check_monotonic("intel-skylake-client-new-ucode", linux_6_1_intel, seed);
}

TEST(CollectorProperty, NoCounterDecreasesOnAHybridHost) {
  for (uint32_t seed = 1; seed <= 8; ++seed) check_monotonic("intel-alderlake-hybrid", linux_6_1_intel_hybrid, seed);
}
