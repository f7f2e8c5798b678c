#include "agent/collect/collector.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <set>

#include "agent/collect/fd_room.h"
#include "agent/system/log.h"
#include "policy/attr_text.h"
#include "policy/policy_select.h"

namespace kvmprof {
namespace {

constexpr int kReconcileEvery = 10;  // a VM's intervals between full reconciles of its threads
constexpr const char* kMemlockRemedy =
    "raise kernel.perf_event_mlock_kb or LimitMEMLOCK (RLIMIT_MEMLOCK), grant CAP_IPC_LOCK, or set limits.max_ring_bytes";

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

uint64_t ns_per_tick() {
  long hz = ::sysconf(_SC_CLK_TCK);
  return static_cast<uint64_t>(1'000'000'000 / (hz > 0 ? hz : 100));
}

int read_paranoid(const HostRoot& root) {
  auto text = root.read_file("/proc/sys/kernel/perf_event_paranoid");
  int value = 2;
  if (text.ok()) std::from_chars(text->data(), text->data() + text->size(), value);
  return value;
}

// What the kernel's refusal of a VM's counters means, and what to do about it. No counts in it:
// it is a label value and a log line that must not change with every VM that starts.
std::string refusal_reason(int err, int paranoid) {
  std::string what = "perf_event_open refused " + errno_name(err) + " on the vCPU threads";
  if (err == EACCES || err == EPERM) {
    return what + ": the agent needs CAP_PERFMON (or CAP_SYS_ADMIN) and ptrace access to the QEMU threads "
                  "(CAP_SYS_PTRACE, or root); perf_event_paranoid is " + std::to_string(paranoid) +
           " (2 and above forbid kernel counting without CAP_PERFMON)";
  }
  if (err == EMFILE || err == ENFILE) return what + ": too many open files; raise LimitNOFILE (RLIMIT_NOFILE) for the agent";
  if (err == ESRCH) return what + ": the threads exited";
  return what + "; retried with a backoff";
}

// What each counted event opens and exports per vCPU thread (a hybrid event opens a counter per
// core type for each mode it exports).
std::vector<EventDemand> event_demands(const PolicyPlan& plan) {
  std::vector<EventDemand> out;
  for (const auto& e : plan.events) {
    if (e.counters.empty()) continue;
    std::set<std::string> modes;
    for (const auto& c : e.counters) modes.insert(c.mode);
    out.push_back({e.counters.size(), modes.size(), !e.counters.front().pmu.empty()});
  }
  return out;
}

// The plan as the host limits allow it: aggregated per VM, only its first `keep` counted
// events, and sampling only when allowed.
PolicyPlan limited(const PolicyPlan& plan, bool per_vm, size_t keep, bool sampling, size_t max_group_size) {
  std::vector<PlannedEvent> events;
  for (const auto& e : plan.events) {
    if (!e.counters.empty() && keep-- == 0) break;
    events.push_back(e);
  }
  Policy policy{plan.name, plan.match, {}, per_vm ? Aggregation::kPerVm : Aggregation::kPerVcpu,
                plan.interval, plan.priority, {}, {}};
  PolicyPlan out = make_policy_plan(policy, std::move(events), max_group_size);
  if (sampling) out.sampling = plan.sampling;
  return out;
}

std::vector<LimitAction> actions_of(const PolicyPlan& plan, const PolicyAllowance& allowed, size_t keep) {
  std::vector<LimitAction> out;
  if (allowed.forced_per_vm) out.push_back({plan.name, "per_vm", ""});
  if (allowed.sampling_off) out.push_back({plan.name, "sampling_off", plan.sampling->event.event});
  size_t counted = 0;
  for (const auto& e : plan.events) {
    if (!e.counters.empty() && counted++ >= keep) out.push_back({plan.name, "dropped", e.event});
  }
  return out;
}

bool same_actions(const std::vector<LimitAction>& a, const std::vector<LimitAction>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
    return x.policy == y.policy && x.action == y.action && x.event == y.event;
  });
}

EventInfo event_info(const std::string& use, const PlannedEvent& p, const std::string& policy) {
  std::string attrs;
  for (const auto& c : p.counters) attrs += (attrs.empty() ? "" : "; ") + attr_summary(c.attr);
  return EventInfo{use, p.event, policy, std::string(to_string(p.guest)), p.precise, std::string(to_string(p.status)),
                   p.semantics, p.reason, attrs};
}

// The sampling decision, "failed" with the kernel's refusal when no thread's rings opened.
EventInfo sampling_info(const PolicyPlan& plan, const std::vector<SourceStatus>& sources) {
  EventInfo info = event_info("sample", plan.sampling->event, plan.name);
  for (const auto& s : sources) {
    bool refused = s.reason.starts_with("perf_event_open refused") || s.reason.starts_with("the kernel refused");
    if (s.source == "sampling:" + info.event && !s.up && refused && !plan.sampling->event.counters.empty()) {
      info.status = "failed";
      info.reason = s.reason;
    }
  }
  return info;
}

}  // namespace

std::chrono::milliseconds CollectorPlan::cycle() const {
  std::chrono::milliseconds shortest = interval;
  for (const auto& p : policies) shortest = std::min(shortest, p.interval.value_or(interval));
  return std::min(shortest, default_policy.interval.value_or(interval));
}

Collector::Collector(HostRoot root, PerfBackend& perf, CollectorPlan plan)
    : root_(std::move(root)),
      ns_per_tick_(ns_per_tick()),
      paranoid_(read_paranoid(root_)),
      inventory_(root_, read_errors_),
      cpu_(root_, ns_per_tick_, read_errors_),
      counters_(perf, open_errors_, read_errors_),
      sampler_(perf, open_errors_, profiles_) {
  inventory_.add_consumer(cpu_);
  inventory_.add_consumer(counters_);
  inventory_.add_consumer(sampler_);
  apply(std::move(plan));
}

std::vector<const PolicyPlan*> Collector::plans() const {
  std::vector<const PolicyPlan*> out;
  for (const auto& p : config_.policies) out.push_back(&p);
  out.push_back(&config_.default_policy);
  return out;
}

std::string Collector::policy_of(const DomainRecord& r) const {
  size_t i = select_policy(config_.policies, DomainFacts{r.name, r.uuid, r.title, r.metadata});
  return i < config_.policies.size() ? config_.policies[i].name : config_.default_policy.name;
}

void Collector::apply(CollectorPlan plan) {
  config_ = std::move(plan);
  sampler_.forget_memlock_ceiling();  // found again at the next refusal, if the limit was not raised
  memlock_ceiling_.reset();
  inventory_.resolve_policies([this](const DomainRecord& r) { return policy_of(r); });
  enforce_limits();
}

// Each policy's plan as the host limits allow it, and every VM's plan from it. A plan whose
// counters and aggregation stay the same keeps its object, so its VMs are not touched.
void Collector::enforce_limits() {
  std::vector<PolicyDemand> demands;
  for (const PolicyPlan* p : plans()) {
    size_t ring = p->sampling ? p->sampling->ring_bytes() : 0;
    SeriesEstimate sampled = ring ? sampling_series(p->sampling->event.guest, p->sampling->threads) : SeriesEstimate{};
    demands.push_back({p->name, p->priority, p->aggregation == Aggregation::kPerVm, event_demands(*p), 0, 0, 0, ring, sampled});
  }
  size_t threads = 0;
  for (const auto& [uuid, vm] : inventory_.vms()) {
    auto d = std::find_if(demands.begin(), demands.end(), [&](const auto& x) { return x.name == vm.policy; });
    d->vcpus += vm.record.vcpus_current;
    ++d->vms;
    // Before its threads are listed, a VM has its vCPU threads and at least one emulator thread.
    size_t all = std::max<size_t>(vm.threads.size(), vm.record.vcpus_current + 1);
    threads += all;
    const PolicyPlan& plan = *plans()[static_cast<size_t>(d - demands.begin())];
    if (d->ring_bytes == 0) continue;
    d->sampled_threads += plan.sampling->threads == SampleThreads::kVcpu ? vm.record.vcpus_current : all;
  }
  Limits limits = config_.limits;
  if (memlock_ceiling_ && (limits.max_ring_bytes == 0 || *memlock_ceiling_ < limits.max_ring_bytes)) {
    limits.max_ring_bytes = std::max<size_t>(*memlock_ceiling_, 1);
  }
  const size_t procfs = 2 * threads - std::min(2 * threads, cpu_.fd_count());
  if (auto room = perf_fd_room(counters_.fd_count() + sampler_.fd_count(), procfs)) {
    cap_by_fd_room(limits, demands, *room);
    note_fd_room(*room, perf_fd_demand(demands));
  }
  limits_ = apply_limits(demands, limits, limits_);
  std::vector<LimitAction> actions;
  std::map<std::string, std::shared_ptr<const PolicyPlan>> effective;
  const auto configured = plans();  // parallel to demands
  for (size_t i = 0; i < demands.size(); ++i) {
    const PolicyPlan* p = configured[i];
    const PolicyAllowance& allowed = limits_.at(p->name);
    const bool per_vm = allowed.per_vm(demands[i]);
    const size_t keep = allowed.kept(demands[i]);
    auto next = std::make_shared<const PolicyPlan>(limited(*p, per_vm, keep, !allowed.sampling_off, config_.limits.max_group_size));
    auto current = effective_.find(p->name);
    bool same = current != effective_.end() && current->second->same_as(*next);
    effective[p->name] = same ? current->second : next;
    auto more = actions_of(*p, allowed, keep);
    actions.insert(actions.end(), more.begin(), more.end());
  }
  effective_ = std::move(effective);
  if (!same_actions(actions, limit_actions_)) {
    for (const auto& a : actions) log_warning("limit: policy " + quote(a.policy) + " " + a.action + (a.event.empty() ? "" : " " + a.event));
  }
  limit_actions_ = std::move(actions);
  for (auto& [uuid, vm] : inventory_.vms()) inventory_.set_plan(vm, effective_.at(vm.policy));
}

Snapshot Collector::collect(const std::vector<DomainRecord>* fresh, bool libvirt_live, Clock::time_point now) {
  if (fresh && inventory_.sync(*fresh, [this](const DomainRecord& r) { return policy_of(r); })) enforce_limits();
  std::vector<std::string> uuids;
  for (const auto& [uuid, vm] : inventory_.vms()) uuids.push_back(uuid);
  for (const auto& uuid : uuids) read(uuid, now);
  sampler_.drain(now);
  recheck_limits();
  auto health = counters_.health();
  Snapshot snap;
  snap.sources = sources(libvirt_live, health);
  std::set<std::string> live;
  std::map<std::string, SourceStatus> perf;
  for (const auto& s : snap.sources) {
    if (!s.source.starts_with("perf:")) continue;
    perf[s.source.substr(5)] = s;
    if (s.up) live.insert(s.source.substr(5));
  }
  for (const auto& [uuid, vm] : inventory_.vms()) snap.vms.push_back(sample(vm, libvirt_live, live));
  add_event_info(snap, perf);
  snap.limit_actions = limit_actions_;
  snap.perf_open_errors = open_errors_;
  snap.read_errors = read_errors_;
  snap.discovery_errors = inventory_.discovery_errors();
  snap.sample_ring_bytes = sampler_.mapped_bytes();
  snap.profile_store = profiles_.stats();
  snap.timestamp_seconds = now_seconds();
  return snap;
}

// Says when RLIMIT_NOFILE starts and stops taking from the policies.
void Collector::note_fd_room(size_t room, size_t demand) {
  if ((room < demand) == short_of_fds_) return;
  short_of_fds_ = room < demand;
  if (short_of_fds_) {
    log_warning("RLIMIT_NOFILE leaves room for " + std::to_string(room) + " perf fds of the " + std::to_string(demand) +
                " the policies ask for (the rest is kept for libvirt, procfs files and scrapes): the lowest-priority "
                "policies degrade first (kvmprof_limit_action_info); raise LimitNOFILE (RLIMIT_NOFILE) for the agent");
  } else {
    log_info("RLIMIT_NOFILE leaves room for every perf fd the policies ask for again");
  }
}

// The limits count threads (sampled ones, and the procfs files of all for RLIMIT_NOFILE), and
// QEMU starts and ends threads after its VM was found; a refused ring's mmap sets a locked-memory
// ceiling. Either way the limits are applied again.
void Collector::recheck_limits() {
  size_t threads = 0;
  for (const auto& [uuid, vm] : inventory_.vms()) threads += vm.threads.size();
  bool again = threads != threads_seen_;  // RLIMIT_NOFILE, if not a configured limit, counts them
  threads_seen_ = threads;
  if (auto ceiling = sampler_.memlock_ceiling(); ceiling != memlock_ceiling_) {
    memlock_ceiling_ = ceiling;
    log_warning("the kernel refused a sampling ring's mmap (locked memory): sampling stops lowest priority first "
                "to stay under the " + std::to_string(*ceiling) + " bytes of rings mapped then, until the next reload; to "
                "sample more, " + std::string(kMemlockRemedy));
    again = true;
  }
  if (again) enforce_limits();
}

// A VM due for reading (per its policy's interval): its threads where needed, then procfs and
// counters once each. Threads procfs finds exited leave through the inventory.
void Collector::read(const std::string& uuid, Clock::time_point now) {
  VmEntry& vm = inventory_.vms().at(uuid);
  if (now < vm.next_read) return;  // its policy reads it less often; the last values stand
  const auto interval = vm.plan->interval.value_or(config_.interval);
  vm.next_read = now + interval - config_.cycle() / 2;
  const bool reconcile = now >= vm.next_reconcile;
  if (reconcile) vm.next_reconcile = now + kReconcileEvery * interval;
  if (!inventory_.refresh(vm, now, reconcile)) return;  // its process exited: it left
  if (!inventory_.threads_exited(vm, cpu_.read(uuid, now))) return;
  counters_.read(uuid, now);
}

VmSample Collector::sample(const VmEntry& vm, bool libvirt_live, const std::set<std::string>& live) const {
  VmSample out{vm.record.name, vm.record.uuid, vm.policy, vm.mapped(), {}, {}, {}, {}, {}, {}};
  cpu_.fill(vm.record.uuid, out);
  counters_.fill(vm.record.uuid, out, live);
  sampler_.fill(vm.record.uuid, out);
  if (!libvirt_live) return out;  // not live, no series: the last exit counts are not shown as current
  for (auto& vcpu : out.vcpus) {
    auto exits = vm.exits.find(vcpu.index);
    if (exits == vm.exits.end()) continue;
    for (const auto& [reason, count] : exits->second) vcpu.exits[reason] = count.total;
  }
  return out;
}

std::vector<SourceStatus> Collector::sources(bool libvirt_live, const std::map<std::string, EventHealth>& health) {
  bool exits = std::any_of(inventory_.vms().begin(), inventory_.vms().end(), [](const auto& v) { return !v.second.exits.empty(); });
  std::vector<SourceStatus> out;
  out.push_back({"libvirt_vcpu_exits", libvirt_live && exits,
                 libvirt_live ? "libvirt reports no vcpu.N.exits (needs QEMU query-stats)" : "libvirt is not answering"});
  auto [vcpus, untrusted] = cpu_.tick_trust();
  out.push_back({"procfs_tick_split", vcpus > 0 && untrusted == 0,
                 vcpus == 0 ? kNoVcpuThreads
                            : "vCPU threads have stat ticks that disagree with schedstat; they export mode=\"all\""});
  for (const auto& [event, h] : health) {
    if (h.counted) tracepoints_fired_.insert(event);
  }
  std::map<std::string, const PlannedEvent*> events;  // per event, a plan that counts it if any does
  std::vector<std::string> order;
  for (const PolicyPlan* plan : plans()) {
    for (const auto& e : plan->events) {
      auto [it, added] = events.try_emplace(e.event, &e);
      if (added) order.push_back(e.event);
      if (it->second->counters.empty() && !e.counters.empty()) it->second = &e;
    }
  }
  for (const auto& event : order) out.push_back(event_source(*events.at(event), health));
  add_sampling_sources(out);
  return out;
}

// Each sampling event: live when its rings are open on some thread now.
void Collector::add_sampling_sources(std::vector<SourceStatus>& out) const {
  auto health = sampler_.health();
  std::set<std::string> seen;
  for (const PolicyPlan* plan : plans()) {
    if (!plan->sampling || !seen.insert(plan->sampling->event.event).second) continue;
    const PlannedEvent& e = plan->sampling->event;
    SourceStatus s{"sampling:" + e.event, false, e.reason};
    auto h = health.find(e.event);
    if (e.counters.empty()) {
      // not sampled on this host: the decision says why
    } else if (h == health.end() || (h->second.open == 0 && h->second.refused == 0)) {
      bool limited = std::any_of(limit_actions_.begin(), limit_actions_.end(), [&](const auto& a) { return a.action == "sampling_off" && a.event == e.event; });
      s.reason = limited ? "not sampled: a host limit stopped it (kvmprof_limit_action_info)" : kNoVcpuThreads;
    } else if (h->second.open == 0 && h->second.mmap_refused) {
      s.reason = "the kernel refused the sampling ring's mmap (" + errno_name(h->second.last_errno) +
                 "): locked memory is exhausted; " + kMemlockRemedy;
    } else if (h->second.open == 0) {
      s.reason = refusal_reason(h->second.last_errno, paranoid_);
    } else {
      s = {"sampling:" + e.event, true, ""};
    }
    out.push_back(std::move(s));
  }
}

// Live means: its counters are open and read on some vCPU thread now, and, for a tracepoint,
// some vCPU thread has hit it.
SourceStatus Collector::event_source(const PlannedEvent& e, const std::map<std::string, EventHealth>& health) const {
  const std::string source = "perf:" + e.event;
  if (e.counters.empty()) return {source, false, e.reason};
  auto h = health.find(e.event);
  if (h == health.end() || (h->second.open == 0 && h->second.refused == 0 && h->second.read_failed == 0)) {
    bool limited = std::any_of(limit_actions_.begin(), limit_actions_.end(), [&](const auto& a) { return a.event == e.event; });
    return {source, false, limited ? "not counted: a host limit dropped it (kvmprof_limit_action_info)" : kNoVcpuThreads};
  }
  if (h->second.open == 0 && h->second.refused > 0) return {source, false, refusal_reason(h->second.last_errno, paranoid_)};
  if (h->second.open == 0) {
    return {source, false, "reads of its counters fail (" + errno_name(h->second.last_errno) + "); counted in kvmprof_read_errors_total"};
  }
  if (e.tracepoint && !tracepoints_fired_.contains(e.event)) {
    return {source, false, "open, but no vCPU thread has hit it yet (on nested KVM kvm:kvm_exit never fires)"};
  }
  return {source, true, ""};
}

// Each configured event's decision, with what really happened to it: an event the kernel
// refused on every vCPU thread is "failed", with the errno and what to do.
void Collector::add_event_info(Snapshot& snap, const std::map<std::string, SourceStatus>& perf) const {
  for (const PolicyPlan* plan : plans()) {
    for (const auto& p : plan->events) {
      EventInfo info = event_info("count", p, plan->name);
      const SourceStatus& s = perf.at(p.event);
      if (!p.counters.empty() && !s.up && s.reason.starts_with("perf_event_open refused")) {
        info.status = "failed";
        info.reason = s.reason;
      }
      snap.event_info.push_back(std::move(info));
    }
    if (plan->sampling) snap.event_info.push_back(sampling_info(*plan, snap.sources));
  }
  snap.open_fallbacks = config_.open_fallbacks;
}

}  // namespace kvmprof
