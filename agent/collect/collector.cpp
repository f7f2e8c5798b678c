#include "agent/collect/collector.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "agent/discovery/qemu_process.h"
#include "agent/system/log.h"
#include "policy/policy_select.h"

namespace kvmprof {
namespace {

constexpr double kTracepointGraceSeconds = 1.0;  // vCPU run time before "never fires" is said
constexpr uint64_t kRescanEvery = 10;            // cycles between full thread reconciles
constexpr size_t kSeriesPerVcpu = 5;             // cpu modes + wait + a few exits, not reducible

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

uint64_t ns_per_tick() {
  long hz = ::sysconf(_SC_CLK_TCK);
  return static_cast<uint64_t>(1'000'000'000 / (hz > 0 ? hz : 100));
}

std::vector<const PolicyPlan*> all_plans(const CollectorPlan& plan) {
  std::vector<const PolicyPlan*> out;
  for (const auto& p : plan.policies) out.push_back(&p);
  out.push_back(&plan.default_policy);
  return out;
}

// The plan with only its first `keep` counted events.
PolicyPlan truncated(const PolicyPlan& plan, size_t keep, size_t max_group_size) {
  std::vector<PlannedEvent> events;
  for (const auto& e : plan.events) {
    if (!e.counters.empty() && keep-- == 0) break;
    events.push_back(e);
  }
  Policy policy{plan.name, plan.match, {}, plan.aggregation, plan.interval, plan.priority, {}};
  return make_policy_plan(policy, std::move(events), max_group_size);
}

size_t counted_events(const PolicyPlan& plan) {
  return static_cast<size_t>(std::count_if(plan.events.begin(), plan.events.end(),
                                           [](const PlannedEvent& e) { return !e.counters.empty(); }));
}

// What the policies ask of this host, for the limits.
struct LimitState {
  std::map<std::string, PolicyPlan> plans;
  std::map<std::string, size_t> vcpus;
  std::map<std::string, size_t> vms;

  size_t counters() {
    size_t n = 0;
    for (const auto& [name, p] : plans) n += vcpus[name] * p.slots.size();
    return n;
  }
  // Estimated series: per vCPU its CPU/wait/exit series, plus per counter 3 series per vCPU
  // (value, enabled, running) or 1 per VM when aggregated.
  size_t series() {
    size_t n = 0;
    for (const auto& [name, p] : plans) {
      size_t per_counter = p.aggregation == Aggregation::kPerVm ? vms[name] : vcpus[name] * 3;
      n += vcpus[name] * kSeriesPerVcpu + per_counter * p.slots.size();
    }
    return n;
  }
};

void aggregate_for_series(LimitState& state, const std::vector<std::string>& order, size_t max_series,
                          std::vector<LimitAction>& actions) {
  for (const auto& name : order) {
    if (max_series == 0 || state.series() <= max_series) return;
    if (state.plans[name].aggregation == Aggregation::kPerVm || state.vcpus[name] == 0) continue;
    state.plans[name].aggregation = Aggregation::kPerVm;
    actions.push_back({name, "per_vm", ""});
  }
}

void drop_for_counters(LimitState& state, const std::vector<std::string>& order, const Limits& limits,
                       std::vector<LimitAction>& actions) {
  for (const auto& name : order) {
    PolicyPlan& plan = state.plans[name];
    while (limits.max_counters > 0 && state.counters() > limits.max_counters && state.vcpus[name] > 0 &&
           counted_events(plan) > 0) {
      PolicyPlan smaller = truncated(plan, counted_events(plan) - 1, limits.max_group_size);
      for (const auto& e : plan.events) {
        bool kept = std::any_of(smaller.events.begin(), smaller.events.end(), [&](const auto& k) { return k.event == e.event; });
        if (!kept && !e.counters.empty()) actions.push_back({name, "dropped", e.event});
      }
      plan = std::move(smaller);
    }
  }
}

}  // namespace

std::chrono::milliseconds CollectorPlan::cycle() const {
  std::chrono::milliseconds shortest = interval;
  for (const auto& p : policies) shortest = std::min(shortest, p.interval.value_or(interval));
  return std::min(shortest, default_policy.interval.value_or(interval));
}

Collector::Collector(HostRoot root, PerfBackend& perf, CollectorPlan plan)
    : root_(std::move(root)), perf_(perf), ns_per_tick_(ns_per_tick()) {
  apply(std::move(plan));
}

void Collector::apply(CollectorPlan plan) {
  config_ = std::move(plan);
  for (auto& [uuid, vm] : vms_) vm.policy = policy_name(vm.record);
  for (const PolicyPlan* p : all_plans(config_)) {
    for (const auto& e : p->events) {
      if (!e.counters.empty() && !e.tracepoint) live_.insert(e.event);
    }
  }
  enforce_limits();
}

Snapshot Collector::collect(const std::optional<std::vector<DomainRecord>>& domains) {
  if (domains) sync(*domains);
  CollectContext ctx{root_, perf_, ns_per_tick_, open_errors_, read_errors_};
  const bool reconcile = cycles_++ % kRescanEvery == 0;
  const auto now = std::chrono::steady_clock::now();
  for (auto& [uuid, vm] : vms_) {
    const auto& plan = effective_.at(vm.policy);
    if (!vm.state) attach(vm, plan);
    if (!vm.state) continue;
    if (vm.state->plan_ptr() != plan) {
      if (vm.state->plan().key() != plan->key()) log_info("VM " + vm.record.name + ": counters reopened for policy " + plan->name);
      vm.state->switch_plan(ctx, plan);
    }
    if (now < vm.next_read) continue;  // its policy reads it less often; the last values stand
    vm.next_read = now + plan->interval.value_or(config_.interval) - config_.cycle() / 2;
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
  add_event_info(snap);
  snap.limit_actions = limit_actions_;
  snap.perf_open_errors = open_errors_;
  snap.read_errors = read_errors_;
  snap.discovery_errors = discovery_errors_;
  snap.timestamp_seconds = now_seconds();
  return snap;
}

void Collector::sync(const std::vector<DomainRecord>& domains) {
  std::set<std::string> present;
  libvirt_exits_seen_ = false;
  bool changed = false;
  for (const auto& record : domains) {
    present.insert(record.uuid);
    libvirt_exits_seen_ = libvirt_exits_seen_ || !record.exits.empty();
    auto [it, added] = vms_.try_emplace(record.uuid, Vm{record, nullptr, "", {}, ""});
    Vm& vm = it->second;
    if (added) log_info("VM " + record.name + " (" + record.uuid + ") found");
    if (!added && vm.record.id != record.id) vm.state.reset();  // restarted
    bool described = added || vm.record.name != record.name || vm.record.title != record.title ||
                     vm.record.metadata != record.metadata;
    changed = changed || described || vm.record.vcpus_current != record.vcpus_current;
    vm.record = record;
    if (described) vm.policy = policy_name(record);  // selectors (a regex for metadata) run only here
  }
  std::erase_if(vms_, [&](const auto& entry) {
    bool gone = !present.contains(entry.first);
    if (gone) log_info("VM " + entry.second.record.name + " (" + entry.first + ") gone");
    changed = changed || gone;
    return gone;
  });
  if (changed) enforce_limits();
}

std::string Collector::policy_name(const DomainRecord& r) const {
  DomainFacts facts{r.name, r.uuid, r.title, r.metadata};
  for (const auto& p : config_.policies) {
    if (selector_matches(p.match, facts)) return p.name;
  }
  return config_.default_policy.name;
}


// Host limits: when the estimate exceeds limits.max_series, the lowest-priority policies are
// aggregated per VM first; when open counters exceed limits.max_counters, they lose events
// from the end of their list. Each step is reported as a LimitAction.
void Collector::enforce_limits() {
  LimitState state;
  for (const PolicyPlan* p : all_plans(config_)) state.plans.emplace(p->name, *p);
  for (const auto& [uuid, vm] : vms_) {
    state.vcpus[vm.policy] += vm.record.vcpus_current;
    ++state.vms[vm.policy];
  }
  std::vector<std::string> order;  // lowest priority first; among equals, later policies first
  for (const PolicyPlan* p : all_plans(config_)) order.insert(order.begin(), p->name);
  std::stable_sort(order.begin(), order.end(),
                   [&](const auto& a, const auto& b) { return state.plans[a].priority < state.plans[b].priority; });
  limit_actions_.clear();
  aggregate_for_series(state, order, config_.limits.max_series, limit_actions_);
  drop_for_counters(state, order, config_.limits, limit_actions_);
  for (const auto& a : limit_actions_) log_warning("limit: policy " + a.policy + " " + a.action + (a.event.empty() ? "" : " " + a.event));
  publish(std::move(state.plans));
}

// Plans whose counters stay the same keep their pointer, so their VMs are not reopened.
void Collector::publish(std::map<std::string, PolicyPlan> plans) {
  std::map<std::string, std::shared_ptr<const PolicyPlan>> effective;
  for (auto& [name, p] : plans) {
    auto current = effective_.find(name);
    bool same = current != effective_.end() && current->second->key() == p.key() &&
                current->second->aggregation == p.aggregation;
    effective[name] = same ? current->second : std::make_shared<const PolicyPlan>(std::move(p));
  }
  effective_ = std::move(effective);
}

void Collector::attach(Vm& vm, const std::shared_ptr<const PolicyPlan>& plan) {
  auto pid = find_qemu_pid(root_, vm.record.uuid);
  if (!pid) {
    set_problem(vm, "qemu_process_not_found",
                "no process with '-uuid " + vm.record.uuid +
                    "' in /proc; is the agent in the host's PID namespace (hostPID, or --root)?");
    return;
  }
  vm.state = std::make_unique<VmState>(*pid, plan);
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
    const PolicyPlan& plan = vm.state->plan();
    for (const auto& [tid, vcpu] : vm.state->vcpus()) {
      for (size_t slot = 0; slot < plan.slots.size(); ++slot) {
        if (vcpu.counts[slot] > 0) live_.insert(plan.slots[slot].name);
      }
    }
    if (vm.state->vcpu_count() < vm.record.vcpus_current) {
      set_problem(vm, "vcpu_threads_not_found",
                  "found " + std::to_string(vm.state->vcpu_count()) + " of " + std::to_string(vm.record.vcpus_current) +
                      " vCPU threads named 'CPU N/...'; QEMU must run with debug-threads=on");
    }
  }
}

VmSample Collector::sample(const Vm& vm) const {
  VmSample out{vm.record.name, vm.record.uuid, vm.policy, false, {}, {}, {}};
  if (!vm.state) return out;
  out.mapped = vm.state->vcpu_count() >= vm.record.vcpus_current;
  out.vcpus = vm.state->vcpu_samples(live_);
  out.emulator_cpu = vm.state->emulator_cpu();
  for (auto& vcpu : out.vcpus) {
    auto exits = vm.record.exits.find(vcpu.index);
    if (exits != vm.record.exits.end()) vcpu.exits = exits->second;
  }
  if (vm.state->plan().aggregation == Aggregation::kPerVm) {
    std::map<std::pair<std::string, std::string>, EventValue> sums;
    for (auto& vcpu : out.vcpus) {
      for (const auto& e : vcpu.events) {
        EventValue& sum = sums.try_emplace({e.event, e.mode}, EventValue{e.event, e.mode, 0, 0, 0}).first->second;
        sum.value += e.value;
        sum.enabled_seconds += e.enabled_seconds;
        sum.running_seconds += e.running_seconds;
      }
      vcpu.events.clear();
    }
    for (auto& [key, sum] : sums) out.events.push_back(sum);
  }
  return out;
}

void Collector::add_event_info(Snapshot& snap) const {
  for (const PolicyPlan* plan : all_plans(config_)) {
    for (const auto& p : plan->events) {
      snap.event_info.push_back({p.event, plan->name, std::string(to_string(p.guest)), p.precise,
                                 std::string(to_string(p.status)), p.semantics, p.reason});
      for (const auto& step : p.fallbacks) ++snap.open_fallbacks[{p.event, step}];
    }
  }
}

std::vector<SourceStatus> Collector::sources(bool libvirt_answered) const {
  std::vector<SourceStatus> out;
  out.push_back({"libvirt_vcpu_exits", libvirt_answered && libvirt_exits_seen_,
                 libvirt_answered ? "libvirt reports no vcpu.N.exits (needs QEMU query-stats)"
                                  : "libvirt is not connected"});
  out.push_back(ticks_source());
  std::set<std::string> seen;
  for (const PolicyPlan* plan : all_plans(config_)) {
    for (const auto& e : plan->events) {
      if (seen.insert(e.event).second) out.push_back(event_source(e));
    }
  }
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
                           " vCPU threads have stat ticks that disagree with schedstat; they export mode=\"all\""};
}

SourceStatus Collector::event_source(const PlannedEvent& event) const {
  std::string source = "perf:" + event.event;
  if (event.counters.empty()) return {source, false, event.reason};
  if (live_.contains(event.event)) return {source, true, ""};
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
