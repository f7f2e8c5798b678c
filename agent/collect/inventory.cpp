#include "agent/collect/inventory.h"

#include <algorithm>
#include <set>

#include "agent/discovery/qemu_process.h"
#include "agent/system/log.h"

namespace kvmprof {
namespace {

std::string vm_name(const DomainRecord& r) { return "VM " + quote(r.name) + " (" + r.uuid + ")"; }

}  // namespace

size_t VmEntry::vcpu_threads() const {
  return static_cast<size_t>(std::count_if(threads.begin(), threads.end(), [](const auto& t) { return t.second.has_value(); }));
}

bool Inventory::sync(const std::vector<DomainRecord>& domains, const Resolver& resolve) {
  ++answers_;
  bool changed = false;
  std::set<std::string> present;
  for (DomainRecord record : domains) {
    present.insert(record.uuid);
    if (record.id < 0) continue;  // it became inactive while libvirt answered: not a restart
    if (auto gone = exited_.find(record.uuid); gone != exited_.end() && gone->second == record.id) continue;
    auto [it, added] = vms_.try_emplace(record.uuid);
    VmEntry& vm = it->second;
    if (added) log_info(vm_name(record) + " found");
    if (!added && vm.record.id != record.id) restarted(vm);
    for (const auto& [index, reasons] : record.exits) {
      for (const auto& [reason, count] : reasons) vm.exits[index][reason].update(count);
    }
    const bool described = added || vm.record.name != record.name || vm.record.title != record.title ||
                           vm.record.metadata != record.metadata;
    changed = changed || added || vm.record.vcpus_current != record.vcpus_current;
    vm.record = std::move(record);
    if (described) {  // selectors (a regex for metadata) run only when something they read changed
      std::string policy = resolve(vm.record);
      changed = changed || policy != vm.policy;
      vm.policy = std::move(policy);
    }
  }
  std::erase_if(exited_, [&](const auto& e) { return !present.contains(e.first); });
  std::vector<std::string> stopped;
  for (const auto& [uuid, vm] : vms_) {
    if (!present.contains(uuid)) stopped.push_back(uuid);
  }
  for (const auto& uuid : stopped) remove(uuid, "gone");
  return changed || !stopped.empty();
}

// A new process under the same domain: new threads, the same series and totals.
void Inventory::restarted(VmEntry& vm) {
  log_info(vm_name(vm.record) + " restarted");
  for (auto& [index, reasons] : vm.exits) {
    for (auto& [reason, count] : reasons) count.last = 0;  // the new process counts from zero
  }
  drop_threads(vm);
  vm.pid.reset();
  vm.listed = false;
  clear_problem(vm);
}

bool Inventory::resolve_policies(const Resolver& resolve) {
  bool changed = false;
  for (auto& [uuid, vm] : vms_) {
    std::string policy = resolve(vm.record);
    changed = changed || policy != vm.policy;
    vm.policy = std::move(policy);
  }
  return changed;
}

void Inventory::set_plan(VmEntry& vm, std::shared_ptr<const PolicyPlan> plan) {
  if (vm.plan == plan) return;
  auto old = std::exchange(vm.plan, std::move(plan));
  if (!old) return;  // a new VM: its threads are announced with the plan
  if (!old->slots.empty() && old->key() != vm.plan->key()) {
    log_info(vm_name(vm.record) + ": counters reopened for policy " + quote(vm.plan->name));
  }
  for (ThreadConsumer* c : consumers_) c->plan_changed(vm.record.uuid, vm.plan);
}

bool Inventory::refresh(VmEntry& vm, Clock::time_point now, bool reconcile) {
  if (!vm.pid && !find_process(vm, now)) return true;
  const bool missing = vm.vcpu_threads() < vm.record.vcpus_current;
  if (vm.listed && !reconcile && !(missing && vm.search.due(now))) return true;
  // A reused pid would make another process's threads ours: its identity is confirmed on every
  // reconcile. Only an answer that it has exited removes the VM; a failed read keeps it.
  auto exited = qemu_exited(root_, *vm.pid, vm.record.uuid, reconcile);
  if (!exited.ok()) {
    count_error(read_errors_, "procfs", exited.error());
    return true;
  }
  auto tids = *exited ? Result<std::vector<pid_t>>(Error{ESRCH, "exited"}) : list_threads(root_, *vm.pid);
  if (!tids.ok() && gone(tids.error())) {
    process_exited(vm);
    return false;
  }
  if (!tids.ok()) {
    count_error(read_errors_, "procfs", tids.error());
    return true;
  }
  list_threads_of(vm, *tids);
  if (vm.vcpu_threads() < vm.record.vcpus_current) {
    vm.search.failed(now);
    note_problem(vm, "vcpu_threads_not_found",
                 "found " + std::to_string(vm.vcpu_threads()) + " of " + std::to_string(vm.record.vcpus_current) +
                     " vCPU threads named 'CPU N/...'; QEMU must run with debug-threads=on");
  } else {
    vm.search.succeeded();
    clear_problem(vm);
  }
  return true;
}

bool Inventory::find_process(VmEntry& vm, Clock::time_point now) {
  if (!vm.search.due(now)) return false;
  auto pid = find_qemu_pid(root_, vm.record.uuid);
  if (!pid) {
    vm.search.failed(now);
    note_problem(vm, "qemu_process_not_found",
                 "no process with '-uuid " + vm.record.uuid +
                     "' in /proc; is the agent in the host's PID namespace (hostPID, or --root)?");
    return false;
  }
  vm.pid = pid;
  vm.search.succeeded();
  return true;
}

// Threads that are gone leave, new ones are classified by name; an unnamed thread is looked at
// again while vCPUs are missing (QEMU names a thread just after it starts).
void Inventory::list_threads_of(VmEntry& vm, const std::vector<pid_t>& tids) {
  vm.listed = true;
  std::set<pid_t> alive(tids.begin(), tids.end());
  std::vector<pid_t> gone;
  for (const auto& [tid, vcpu] : vm.threads) {
    if (!alive.contains(tid)) gone.push_back(tid);
  }
  for (pid_t tid : gone) drop_thread(vm, tid);
  if (vm.vcpu_threads() < vm.record.vcpus_current) reclassify_unnamed(vm);
  for (pid_t tid : alive) {
    if (vm.threads.contains(tid)) continue;
    auto vcpu = thread_vcpu_index(root_, *vm.pid, tid);
    if (vcpu.ok()) add_thread(vm, tid, *vcpu);  // else it exited meanwhile; the next list tells
  }
}

void Inventory::reclassify_unnamed(VmEntry& vm) {
  for (auto& [tid, role] : vm.threads) {
    if (role) continue;
    auto vcpu = thread_vcpu_index(root_, *vm.pid, tid);
    if (vcpu.ok() && *vcpu) add_thread(vm, tid, *vcpu);
  }
}

void Inventory::add_thread(VmEntry& vm, pid_t tid, std::optional<unsigned> vcpu) {
  vm.threads[tid] = vcpu;
  VmThread thread{vm.record.uuid, *vm.pid, tid, vcpu};
  for (ThreadConsumer* c : consumers_) c->thread_added(thread, vm.plan);
}

void Inventory::drop_thread(VmEntry& vm, pid_t tid) {
  auto it = vm.threads.find(tid);
  if (it == vm.threads.end()) return;
  VmThread thread{vm.record.uuid, vm.pid.value_or(0), tid, it->second};
  vm.threads.erase(it);
  for (ThreadConsumer* c : consumers_) c->thread_gone(thread);
}

void Inventory::drop_threads(VmEntry& vm) {
  while (!vm.threads.empty()) drop_thread(vm, vm.threads.begin()->first);
}

bool Inventory::threads_exited(VmEntry& vm, const std::vector<pid_t>& tids) {
  if (tids.empty()) return true;
  for (pid_t tid : tids) drop_thread(vm, tid);
  auto exited = vm.pid ? qemu_exited(root_, *vm.pid, vm.record.uuid, false) : Result<bool>(false);
  if (!exited.ok() || !*exited) return true;  // alive, or /proc could not tell: it stays
  process_exited(vm);
  return false;
}

// Its process is gone: the VM leaves now, and an older libvirt answer that still lists this
// domain id does not bring it back.
void Inventory::process_exited(VmEntry& vm) {
  exited_[vm.record.uuid] = vm.record.id;
  remove(vm.record.uuid, "gone: its QEMU process exited");
}

void Inventory::remove(const std::string& uuid, const std::string& why) {
  auto it = vms_.find(uuid);
  log_info(vm_name(it->second.record) + " " + why);
  drop_threads(it->second);
  for (ThreadConsumer* c : consumers_) c->vm_gone(uuid);
  vms_.erase(it);
}

// A problem is counted (and logged) once, and only when a libvirt answer newer than the one it
// was first seen with still lists the VM: a routine stop is gone from that answer.
void Inventory::note_problem(VmEntry& vm, const std::string& reason, const std::string& detail) {
  if (vm.problem != reason) {
    vm.problem = reason;
    vm.problem_since = answers_;
    vm.problem_reported = false;
    return;
  }
  if (vm.problem_reported || answers_ <= vm.problem_since) return;
  vm.problem_reported = true;
  ++discovery_errors_[reason];
  log_warning(vm_name(vm.record) + " not fully measured: " + detail);
}

void Inventory::clear_problem(VmEntry& vm) {
  vm.problem.clear();
  vm.problem_reported = false;
}

}  // namespace kvmprof
