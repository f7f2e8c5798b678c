#include "agent/collect/collector.h"

#include <unistd.h>

#include <chrono>
#include <set>

#include "agent/discovery/qemu_process.h"
#include "agent/system/log.h"

namespace kvmprof {
namespace {

constexpr double kTracepointGraceSeconds = 1.0;  // vCPU run time before "never fires" is said
constexpr uint64_t kRescanEvery = 10;              // cycles between full thread reconciles

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

uint64_t ns_per_tick() {
  long hz = ::sysconf(_SC_CLK_TCK);
  return static_cast<uint64_t>(1'000'000'000 / (hz > 0 ? hz : 100));
}

}  // namespace

Collector::Collector(HostRoot root, PerfBackend& perf, std::vector<PlannedEvent> plan)
    : root_(std::move(root)), perf_(perf), ns_per_tick_(ns_per_tick()), plan_(std::move(plan)) {
  for (size_t i = 0; i < plan_.size(); ++i) {
    for (const auto& counter : plan_[i].counters) {
      slots_.push_back(counter);
      owner_.push_back(i);
      live_.push_back(!plan_[i].tracepoint);
    }
  }
}

Snapshot Collector::collect(const std::optional<std::vector<DomainRecord>>& domains) {
  if (domains) sync(*domains);
  CollectContext ctx{root_, perf_, slots_, ns_per_tick_, open_errors_, read_errors_};
  const bool reconcile = cycles_++ % kRescanEvery == 0;
  for (auto& [uuid, vm] : vms_) {
    if (!vm.state) attach(vm);
    if (!vm.state) continue;
    const unsigned expected = vm.record.vcpus_current;
    bool rescan = reconcile || vm.state->needs_rescan(expected);
    if (rescan && !vm.state->refresh_threads(ctx, expected)) {
      vm.state.reset();  // the process is gone; libvirt will tell us the domain stopped
      continue;
    }
    vm.state->read(ctx);
  }
  update_liveness();
  Snapshot snap;
  for (const auto& [uuid, vm] : vms_) snap.vms.push_back(sample(vm));
  snap.sources = sources(domains.has_value());
  for (const auto& p : plan_) {
    snap.event_info.push_back({p.event, "default", std::string(to_string(p.guest)), p.precise,
                               std::string(to_string(p.status)), p.semantics, p.reason});
    for (const auto& step : p.fallbacks) ++snap.open_fallbacks[{p.event, step}];
  }
  snap.perf_open_errors = open_errors_;
  snap.read_errors = read_errors_;
  snap.discovery_errors = discovery_errors_;
  snap.timestamp_seconds = now_seconds();
  return snap;
}

void Collector::sync(const std::vector<DomainRecord>& domains) {
  std::set<std::string> present;
  libvirt_exits_seen_ = false;
  for (const auto& record : domains) {
    present.insert(record.uuid);
    libvirt_exits_seen_ = libvirt_exits_seen_ || !record.exits.empty();
    auto [it, added] = vms_.try_emplace(record.uuid, Vm{record, nullptr, ""});
    if (added) log_info("VM " + record.name + " (" + record.uuid + ") found");
    if (!added && it->second.record.id != record.id) it->second.state.reset();  // restarted
    it->second.record = record;
  }
  std::erase_if(vms_, [&](const auto& entry) {
    bool gone = !present.contains(entry.first);
    if (gone) log_info("VM " + entry.second.record.name + " (" + entry.first + ") gone");
    return gone;
  });
}

void Collector::attach(Vm& vm) {
  auto pid = find_qemu_pid(root_, vm.record.uuid);
  if (!pid) {
    set_problem(vm, "qemu_process_not_found",
                "no process with '-uuid " + vm.record.uuid +
                    "' in /proc; is the agent in the host's PID namespace (hostPID, or --root)?");
    return;
  }
  vm.state = std::make_unique<VmState>(*pid);
  vm.problem.clear();
}

void Collector::set_problem(Vm& vm, const std::string& reason, const std::string& detail) {
  if (vm.problem == reason) return;  // log and count each problem once per VM
  vm.problem = reason;
  ++discovery_errors_[reason];
  log_warning("VM " + vm.record.name + " (" + vm.record.uuid + ") not fully measured: " + detail);
}

void Collector::update_liveness() {
  for (auto& [uuid, vm] : vms_) {
    if (!vm.state) continue;
    for (const auto& [tid, vcpu] : vm.state->vcpus()) {
      for (size_t slot = 0; slot < live_.size(); ++slot) live_[slot] = live_[slot] || vcpu.counts[slot] > 0;
    }
    if (vm.state->vcpu_count() < vm.record.vcpus_current) {
      set_problem(vm, "vcpu_threads_not_found",
                  "found " + std::to_string(vm.state->vcpu_count()) + " of " +
                      std::to_string(vm.record.vcpus_current) +
                      " vCPU threads named 'CPU N/...'; QEMU must run with debug-threads=on");
    }
  }
}

VmSample Collector::sample(const Vm& vm) const {
  VmSample out{vm.record.name, vm.record.uuid, false, {}, {}};
  if (!vm.state) return out;
  out.mapped = vm.state->vcpu_count() >= vm.record.vcpus_current;
  out.vcpus = vm.state->vcpu_samples(slots_, live_);
  out.emulator_cpu = vm.state->emulator_cpu();
  for (auto& vcpu : out.vcpus) {
    auto exits = vm.record.exits.find(vcpu.index);
    if (exits != vm.record.exits.end()) vcpu.exits = exits->second;
  }
  return out;
}

std::vector<SourceStatus> Collector::sources(bool libvirt_answered) const {
  std::vector<SourceStatus> out;
  out.push_back({"libvirt_vcpu_exits", libvirt_answered && libvirt_exits_seen_,
                 libvirt_answered ? "libvirt reports no vcpu.N.exits (needs QEMU query-stats)"
                                  : "libvirt is not connected"});
  out.push_back(ticks_source());
  for (size_t i = 0; i < plan_.size(); ++i) out.push_back(event_source(i));
  return out;
}

SourceStatus Collector::ticks_source() const {
  size_t vcpus = 0, untrusted = 0;
  for (const auto& [uuid, vm] : vms_) {
    if (!vm.state) continue;
    for (const auto& [tid, vcpu] : vm.state->vcpus()) {
      ++vcpus;
      untrusted += vcpu.cpu.trusted() ? 0 : 1;
    }
  }
  return {"procfs_tick_split", vcpus > 0 && untrusted == 0,
          vcpus == 0 ? "no vCPU threads yet"
                     : std::to_string(untrusted) + " of " + std::to_string(vcpus) +
                           " vCPU threads have stat ticks that disagree with schedstat; they "
                           "export mode=\"all\""};
}

SourceStatus Collector::event_source(size_t index) const {
  const PlannedEvent& event = plan_[index];
  std::string source = "perf:" + event.event;
  if (event.counters.empty()) return {source, false, event.reason};
  bool live = false;
  for (size_t slot = 0; slot < slots_.size(); ++slot) live = live || (owner_[slot] == index && live_[slot]);
  if (live) return {source, true, ""};
  double run_seconds = 0;
  for (const auto& [uuid, vm] : vms_) {
    if (!vm.state) continue;
    for (const auto& [tid, vcpu] : vm.state->vcpus()) run_seconds += static_cast<double>(vcpu.cpu.total_ns()) / 1e9;
  }
  return {source, false,
          run_seconds < kTracepointGraceSeconds
              ? "no count yet"
              : "opened, but no vCPU thread has hit it after more than 1 s of vCPU run time; "
                "this host does not fire it (seen on nested KVM)"};
}

size_t Collector::open_fds() const {
  size_t n = 0;
  for (const auto& [uuid, vm] : vms_) n += vm.state ? vm.state->fd_count() : 0;
  return n;
}

}  // namespace kvmprof
