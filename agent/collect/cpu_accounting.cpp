#include "agent/collect/cpu_accounting.h"

#include <set>

#include "agent/system/perf_group.h"

namespace kvmprof {
namespace {

double seconds(uint64_t ns) { return static_cast<double>(ns) / 1e9; }

bool exited(const Error& e) { return e.err == ESRCH || e.err == ENOENT; }

// Adds how much `now` grew since `before`; the values are monotonic, a smaller one adds nothing.
void add_delta(uint64_t& total, uint64_t now, uint64_t before) { total += now > before ? now - before : 0; }

}  // namespace

void CpuAccounting::thread_added(const VmThread& t, const std::shared_ptr<const PolicyPlan>&) {
  Vm& vm = vms_[t.vm];
  if (auto known = vm.threads.find(t.tid); known != vm.threads.end()) {  // a new role: its time so far stays where it was
    known->second.vcpu = t.vcpu;
    return;
  }
  if (auto waiting = vm.unopened.find(t.tid); waiting != vm.unopened.end()) waiting->second.thread = t;
  open(vm, t, std::chrono::steady_clock::now());
}

void CpuAccounting::open(Vm& vm, const VmThread& t, std::chrono::steady_clock::time_point now) {
  auto reader = ThreadReader::open(root_, t.pid, t.tid);
  if (reader.ok()) {
    vm.unopened.erase(t.tid);
    vm.threads.emplace(t.tid, Thread{t.vcpu, std::move(*reader), ThreadCpu(ns_per_tick_), {}});
    return;
  }
  count_error(read_errors_, "procfs", reader.error());
  if (exited(reader.error())) {
    vm.unopened.erase(t.tid);
    vm.exited.push_back(t.tid);
    return;
  }
  auto [waiting, added] = vm.unopened.try_emplace(t.tid, Unopened{t});
  waiting->second.retry.failed(now);
}

void CpuAccounting::thread_gone(const VmThread& t) {
  auto vm = vms_.find(t.vm);
  if (vm == vms_.end()) return;
  vm->second.unopened.erase(t.tid);
  auto thread = vm->second.threads.find(t.tid);
  if (thread == vm->second.threads.end()) return;
  if (auto times = thread->second.reader.read(); times.ok()) {  // still there (its VM restarted): its last time counts
    thread->second.cpu.update(times->sched, times->ticks);
    account(vm->second, thread->second);
  }
  vm->second.threads.erase(thread);
}

std::vector<pid_t> CpuAccounting::read(const std::string& uuid, std::chrono::steady_clock::time_point now) {
  auto it = vms_.find(uuid);
  if (it == vms_.end()) return {};
  Vm& vm = it->second;
  std::vector<VmThread> due;
  for (const auto& [tid, waiting] : vm.unopened) {
    if (waiting.retry.due(now)) due.push_back(waiting.thread);
  }
  for (const auto& t : due) open(vm, t, now);
  std::vector<pid_t> gone = std::exchange(vm.exited, {});
  for (auto& [tid, thread] : vm.threads) {
    auto times = thread.reader.read();
    if (!times.ok()) {
      count_error(read_errors_, "procfs", times.error());
      if (exited(times.error())) gone.push_back(tid);
      continue;
    }
    thread.cpu.update(times->sched, times->ticks);
    account(vm, thread);
  }
  return gone;
}

// The thread's growth since its last read goes to its vCPU's totals (or the emulator's). Time
// not split by mode counts as "all" only once the thread's ticks are untrusted: before that it
// is waiting to be split.
void CpuAccounting::account(Vm& vm, Thread& t) {
  const ThreadCpu& cpu = t.cpu;
  Seen now{cpu.total_ns(), cpu.wait_ns(), cpu.trusted() ? 0 : cpu.unsplit_ns(), cpu.split_ns()};
  Totals& sum = t.vcpu ? vm.vcpus[*t.vcpu] : vm.emulator;
  add_delta(sum.total, now.total, t.seen.total);
  add_delta(sum.wait, now.wait, t.seen.wait);
  add_delta(sum.unsplit, now.unsplit, t.seen.unsplit);
  for (size_t m = 0; m < now.split.size(); ++m) add_delta(sum.split[m], now.split[m], t.seen.split[m]);
  sum.trusted = sum.trusted && cpu.trusted();
  t.seen = now;
}

void CpuAccounting::fill(const std::string& uuid, VmSample& out) const {
  auto it = vms_.find(uuid);
  if (it == vms_.end()) return;
  const Vm& vm = it->second;
  std::set<unsigned> running;  // vCPUs with a thread now (two threads may briefly claim one vCPU)
  for (const auto& [tid, thread] : vm.threads) {
    if (thread.vcpu) running.insert(*thread.vcpu);
  }
  for (unsigned index : running) {
    auto totals = vm.vcpus.find(index);
    if (totals == vm.vcpus.end()) continue;  // not read yet: no value, not a zero
    const Totals& t = totals->second;
    VcpuSample& v = vcpu_sample(out, index);
    v.cpu.clear();
    if (!t.trusted) {
      v.cpu.push_back({"all", seconds(t.total)});
    } else {
      for (size_t m = 0; m < kCpuModeNames.size(); ++m) v.cpu.push_back({kCpuModeNames[m], seconds(t.split[m])});
    }
    v.wait_seconds = seconds(t.wait);
  }
  const Totals& e = vm.emulator;
  out.emulator_cpu = {{"host_kernel", seconds(e.split[kHostKernel])}, {"host_user", seconds(e.split[kHostUser])}};
  if (e.split[kGuest] > 0) out.emulator_cpu.push_back({"guest", seconds(e.split[kGuest])});
  if (e.unsplit > 0) out.emulator_cpu.push_back({"all", seconds(e.unsplit)});
}

std::pair<size_t, size_t> CpuAccounting::tick_trust() const {
  size_t vcpus = 0, untrusted = 0;
  for (const auto& [uuid, vm] : vms_) {
    for (const auto& [tid, thread] : vm.threads) {
      if (!thread.vcpu) continue;
      ++vcpus;
      untrusted += thread.cpu.trusted() ? 0 : 1;
    }
  }
  return {vcpus, untrusted};
}

size_t CpuAccounting::fd_count() const {
  size_t n = 0;
  for (const auto& [uuid, vm] : vms_) n += 2 * vm.threads.size();
  return n;
}

}  // namespace kvmprof
