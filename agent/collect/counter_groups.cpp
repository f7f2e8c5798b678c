#include "agent/collect/counter_groups.h"

#include <algorithm>

namespace kvmprof {
namespace {

double seconds(uint64_t ns) { return static_cast<double>(ns) / 1e9; }
uint64_t grown(uint64_t now, uint64_t before) { return now > before ? now - before : 0; }

}  // namespace

double scaled_delta(uint64_t raw, uint64_t enabled_ns, uint64_t running_ns) {
  if (running_ns == 0) return 0;
  if (running_ns >= enabled_ns) return static_cast<double>(raw);
  return static_cast<double>(raw) * static_cast<double>(enabled_ns) / static_cast<double>(running_ns);
}

std::vector<CounterGroups::Group> CounterGroups::groups_of(const PolicyPlan& plan) const {
  std::vector<Group> groups;
  for (const auto& slots : plan.groups) {
    Group group;
    group.slots = slots;
    groups.push_back(std::move(group));
  }
  return groups;
}

void CounterGroups::thread_added(const VmThread& t, const std::shared_ptr<const PolicyPlan>& plan) {
  if (!t.vcpu || !plan) return;  // counters are per vCPU thread
  Vm& vm = vms_[t.vm];
  if (!vm.plan) vm.plan = plan;
  if (vm.threads.contains(t.tid)) return;
  Thread& thread = vm.threads[t.tid] = Thread{*t.vcpu, t.tid, groups_of(*vm.plan)};
  open_groups(*vm.plan, thread);
}

void CounterGroups::thread_gone(const VmThread& t) {
  auto vm = vms_.find(t.vm);
  if (vm == vms_.end()) return;
  auto thread = vm->second.threads.find(t.tid);
  if (thread == vm->second.threads.end()) return;
  read_thread(vm->second, thread->second, std::nullopt);  // the kernel keeps an exited thread's last counts
  vm->second.threads.erase(thread);
}

void CounterGroups::plan_changed(const std::string& uuid, const std::shared_ptr<const PolicyPlan>& plan) {
  Vm& vm = vms_[uuid];
  if (vm.plan && vm.plan->key() == plan->key()) {  // the same counters: only the export changes
    vm.plan = plan;
    return;
  }
  for (auto& [tid, thread] : vm.threads) {
    if (vm.plan) read_thread(vm, thread, std::nullopt);  // under the old plan: what its counters counted stays
    thread.groups = groups_of(*plan);
    open_groups(*plan, thread);  // at once: the time until the next cycle is counted too
  }
  vm.plan = plan;
}

void CounterGroups::open_groups(const PolicyPlan& plan, Thread& thread) {
  for (auto& group : thread.groups) open_group(plan, thread, group, Clock::now());
}

void CounterGroups::read(const std::string& uuid, Clock::time_point now) {
  auto vm = vms_.find(uuid);
  if (vm == vms_.end()) return;
  for (auto& [tid, thread] : vm->second.threads) read_thread(vm->second, thread, now);
}

// Reads the thread's open groups (opening refused ones again first when `reopen_at` is given
// and their backoff is over) and adds the deltas to its vCPU's totals. All or nothing: when one
// group fails to read, nothing is added and the next read covers both intervals (else a hybrid
// event would be extrapolated from one core type now and catch up on the other later).
void CounterGroups::read_thread(Vm& vm, Thread& thread, std::optional<Clock::time_point> reopen_at) {
  std::vector<std::pair<Group*, GroupReading>> readings;
  bool failed = false;
  for (auto& group : thread.groups) {
    if (!group.counters && reopen_at && group.retry.due(*reopen_at)) open_group(*vm.plan, thread, group, *reopen_at);
    if (!group.counters) continue;
    auto reading = group.counters->read(perf_);
    group.read_errno = reading.ok() ? 0 : reading.error().err ? reading.error().err : EBADMSG;
    if (!reading.ok()) count_error(read_errors_, "perf", reading.error());
    failed = failed || !reading.ok();
    if (reading.ok()) readings.emplace_back(&group, std::move(*reading));
  }
  if (failed) return;
  std::map<Key, Pending> pending;
  for (auto& [group, reading] : readings) take(*vm.plan, *group, reading, pending);
  for (const auto& [key, p] : pending) {
    Totals& t = vm.vcpus[thread.vcpu][key];
    t.value += scaled_delta(p.raw, p.enabled, p.running);
    t.enabled_ns += p.enabled;
    t.running_ns += std::min(p.running, p.enabled);
  }
}

void CounterGroups::open_group(const PolicyPlan& plan, Thread& thread, Group& group, Clock::time_point now) {
  auto opened = PerfGroup::open(perf_, thread.tid, plan.slots, group.slots, open_errors_);
  if (!opened.ok()) {
    group.err = opened.error().err;
    group.retry.failed(now);
    return;
  }
  group.counters = std::move(*opened);
  group.err = 0;
  group.retry.succeeded();
  group.raw.assign(plan.slots.size(), 0);  // a new counter starts at zero: all it counts is new
  group.enabled = group.running = 0;
}

// One read of the group: each member's growth since the last read joins its (event, mode),
// with the group's enabled and running growth.
void CounterGroups::take(const PolicyPlan& plan, Group& group, const GroupReading& reading, std::map<Key, Pending>& pending) {
  const uint64_t enabled = grown(reading.enabled_ns, group.enabled), running = grown(reading.running_ns, group.running);
  for (size_t slot : group.slots) {
    if (!reading.raw[slot]) continue;
    Pending& p = pending[{plan.slots[slot].name, plan.slots[slot].mode}];
    p.raw += grown(*reading.raw[slot], group.raw[slot]);
    p.enabled = std::max(p.enabled, enabled);
    p.running += running;
    group.raw[slot] = *reading.raw[slot];
  }
  group.enabled = reading.enabled_ns;
  group.running = reading.running_ns;
}

void CounterGroups::fill(const std::string& uuid, VmSample& out, const std::set<std::string>& live) const {
  auto it = vms_.find(uuid);
  if (it == vms_.end() || !it->second.plan) return;
  const Vm& vm = it->second;
  std::vector<Key> keys;  // the plan's (event, mode)s in its order, once each
  std::set<Key> hardware;  // those on a hardware PMU: their times tell of multiplexing
  for (const auto& s : vm.plan->slots) {
    Key key{s.name, s.mode};
    if (live.contains(s.name) && std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
    if (!s.pmu.empty()) hardware.insert(key);
  }
  auto value = [&](const Key& key, const Totals& t) {
    EventValue v{key.first, key.second, t.value, {}, {}};
    if (hardware.contains(key)) {
      v.enabled_seconds = seconds(t.enabled_ns);
      v.running_seconds = seconds(t.running_ns);
    }
    return v;
  };
  if (vm.plan->aggregation == Aggregation::kPerVm) {
    for (const Key& key : keys) {
      Totals sum;
      for (const auto& [index, totals] : vm.vcpus) {
        if (auto t = totals.find(key); t != totals.end()) {
          sum.value += t->second.value;
          sum.enabled_ns += t->second.enabled_ns;
          sum.running_ns += t->second.running_ns;
        }
      }
      if (sum.running_ns > 0) out.events.push_back(value(key, sum));  // never ran: no value, not a zero
    }
    return;
  }
  std::set<unsigned> running;  // vCPUs with a thread now (two threads may briefly claim one vCPU)
  for (const auto& [tid, thread] : vm.threads) running.insert(thread.vcpu);
  for (unsigned index : running) {
    auto totals = vm.vcpus.find(index);
    if (totals == vm.vcpus.end()) continue;
    for (const Key& key : keys) {
      auto t = totals->second.find(key);
      if (t != totals->second.end() && t->second.running_ns > 0) vcpu_sample(out, index).events.push_back(value(key, t->second));
    }
  }
}

// Open and read beats open but failing to read, which beats refused.
int CounterGroups::rank(const Group& g) {
  if (!g.counters) return 0;
  return g.read_errno ? 1 : 2;
}

void CounterGroups::add_health(EventHealth& h, const Group& g) {
  if (g.counters && g.read_errno == 0) {
    ++h.open;
  } else if (g.counters) {
    ++h.read_failed;
    h.last_errno = g.read_errno;
  } else {
    ++h.refused;
    if (g.err) h.last_errno = g.err;
  }
}

// What happened to each event's counters on each vCPU thread followed now: open and read,
// refused by the kernel, or open but failing to read.
std::map<std::string, EventHealth> CounterGroups::health() const {
  std::map<std::string, EventHealth> out;
  for (const auto& [uuid, vm] : vms_) {
    for (const auto& [tid, thread] : vm.threads) {
      std::map<std::string, const Group*> best;  // per event, its best group on this thread
      for (const auto& group : thread.groups) {
        for (size_t slot : group.slots) {
          const Group*& b = best[vm.plan->slots[slot].name];
          if (!b || rank(group) > rank(*b)) b = &group;
        }
      }
      for (const auto& [event, group] : best) add_health(out[event], *group);
    }
    for (const auto& [index, totals] : vm.vcpus) {
      for (const auto& [key, t] : totals) out[key.first].counted = out[key.first].counted || t.value > 0;
    }
  }
  return out;
}

size_t CounterGroups::fd_count() const {
  size_t n = 0;
  for (const auto& [uuid, vm] : vms_) {
    for (const auto& [tid, thread] : vm.threads) {
      for (const auto& g : thread.groups) n += g.counters ? g.counters->fd_count() : 0;
    }
  }
  return n;
}

}  // namespace kvmprof
