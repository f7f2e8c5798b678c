#include "agent/collect/vm_state.h"

#include <algorithm>
#include <set>
#include <utility>

#include "agent/discovery/qemu_process.h"

namespace kvmprof {
namespace {

constexpr double kNsPerSecond = 1e9;

double seconds(uint64_t ns) { return static_cast<double>(ns) / kNsPerSecond; }

void count_read_error(CollectContext& ctx, const std::string& source, const Error& e) {
  ++ctx.read_errors[{source, e.err ? errno_name(e.err) : "EBADMSG"}];
}

std::vector<ModeValue> vcpu_modes(const ThreadCpu& cpu) {
  if (!cpu.trusted()) return {{"all", seconds(cpu.total_ns())}};
  std::vector<ModeValue> out;
  for (size_t m = 0; m < kCpuModeNames.size(); ++m) {
    out.push_back({kCpuModeNames[m], seconds(cpu.split_ns()[m])});
  }
  return out;
}

}  // namespace

bool VmState::refresh_threads(CollectContext& ctx, unsigned expected_vcpus) {
  auto tids = list_threads(ctx.root, pid_);
  if (!tids.ok()) return false;
  listed_ = true;
  std::set<pid_t> alive(tids->begin(), tids->end());
  std::erase_if(vcpus_, [&](const auto& v) { return !alive.contains(v.first); });
  for (auto it = emulator_.begin(); it != emulator_.end();) {
    pid_t tid = (it++)->first;
    if (!alive.contains(tid)) retire_emulator(tid);
  }
  for (pid_t tid : alive) {
    if (!vcpus_.contains(tid) && !emulator_.contains(tid)) add_thread(ctx, tid);
  }
  // A thread is named just after it starts; until every vCPU is found, look again.
  if (vcpus_.size() < expected_vcpus) reclassify_unnamed(ctx);
  return true;
}

void VmState::add_thread(CollectContext& ctx, pid_t tid) {
  auto index = thread_vcpu_index(ctx.root, pid_, tid);
  if (!index.ok()) {
    count_read_error(ctx, "procfs", index.error());
    return;
  }
  auto reader = ThreadReader::open(ctx.root, pid_, tid);
  if (!reader.ok()) {
    count_read_error(ctx, "procfs", reader.error());
    return;
  }
  if (*index) {
    add_vcpu(ctx, tid, **index, std::move(*reader));
  } else {
    emulator_.emplace(tid, EmulatorThread{std::move(*reader), ThreadCpu(ctx.ns_per_tick)});
  }
}

void VmState::add_vcpu(CollectContext& ctx, pid_t tid, unsigned index, ThreadReader reader) {
  VcpuThread vcpu{index, std::move(reader), ThreadCpu(ctx.ns_per_tick), {}, {}, {}, {}, {}};
  open_groups(ctx, tid, vcpu);
  vcpus_.emplace(tid, std::move(vcpu));
}

void VmState::open_groups(CollectContext& ctx, pid_t tid, VcpuThread& vcpu) const {
  const size_t slots = plan_->slots.size();
  vcpu.groups.clear();
  for (const auto& members : plan_->groups) {
    PerfGroup group = PerfGroup::open(ctx.perf, tid, plan_->slots, members, ctx.open_errors);
    if (group.valid()) vcpu.groups.push_back(std::move(group));
  }
  vcpu.base.assign(slots, 0);
  vcpu.counts.assign(slots, 0);
  vcpu.enabled_ns.assign(slots, 0);
  vcpu.running_ns.assign(slots, 0);
}

void VmState::switch_plan(CollectContext& ctx, std::shared_ptr<const PolicyPlan> plan) {
  const std::shared_ptr<const PolicyPlan> old = std::exchange(plan_, std::move(plan));  // may be its last owner
  const PolicyPlan& old_plan = *old;
  for (auto& [tid, vcpu] : vcpus_) {
    std::map<std::pair<std::string, std::string>, double> carried;
    for (size_t slot = 0; slot < old_plan.slots.size(); ++slot) {
      carried[{old_plan.slots[slot].name, old_plan.slots[slot].mode}] = vcpu.counts[slot];
    }
    open_groups(ctx, tid, vcpu);
    for (size_t slot = 0; slot < plan_->slots.size(); ++slot) {
      auto it = carried.find({plan_->slots[slot].name, plan_->slots[slot].mode});
      if (it != carried.end()) vcpu.base[slot] = vcpu.counts[slot] = it->second;
    }
  }
}

void VmState::reclassify_unnamed(CollectContext& ctx) {
  std::vector<std::pair<pid_t, unsigned>> found;
  for (const auto& [tid, thread] : emulator_) {
    auto index = thread_vcpu_index(ctx.root, pid_, tid);
    if (index.ok() && *index) found.emplace_back(tid, **index);
  }
  for (auto [tid, index] : found) {
    retire_emulator(tid);
    auto reader = ThreadReader::open(ctx.root, pid_, tid);
    if (reader.ok()) add_vcpu(ctx, tid, index, std::move(*reader));
  }
}

void VmState::retire_emulator(pid_t tid) {
  auto it = emulator_.find(tid);
  for (size_t m = 0; m < 3; ++m) retired_split_[m] += it->second.cpu.split_ns()[m];
  retired_unsplit_ += it->second.cpu.unsplit_ns();
  emulator_.erase(it);
}

void VmState::read(CollectContext& ctx) {
  for (auto it = vcpus_.begin(); it != vcpus_.end();) {
    auto times = it->second.reader.read();
    if (!times.ok()) {  // exited since the thread list was read
      count_read_error(ctx, "procfs", times.error());
      it = vcpus_.erase(it);
      continue;
    }
    it->second.cpu.update(times->sched, times->ticks);
    read_vcpu(ctx, (it++)->second);
  }
  std::vector<pid_t> gone;
  for (auto& [tid, thread] : emulator_) {
    auto times = thread.reader.read();
    if (times.ok()) {
      thread.cpu.update(times->sched, times->ticks);
    } else {
      count_read_error(ctx, "procfs", times.error());
      gone.push_back(tid);
    }
  }
  for (pid_t tid : gone) retire_emulator(tid);
}

void VmState::read_vcpu(CollectContext& ctx, VcpuThread& vcpu) {
  for (const auto& group : vcpu.groups) {
    auto reading = group.read(ctx.perf);
    if (!reading.ok()) {
      count_read_error(ctx, "perf", reading.error());
      continue;
    }
    for (size_t slot = 0; slot < reading->raw.size(); ++slot) {
      if (!reading->raw[slot]) continue;
      auto value = scaled(*reading->raw[slot], reading->enabled_ns, reading->running_ns);
      if (value) vcpu.counts[slot] = std::max(vcpu.counts[slot], vcpu.base[slot] + *value);
      vcpu.enabled_ns[slot] = reading->enabled_ns;
      vcpu.running_ns[slot] = reading->running_ns;
    }
  }
}

std::vector<VcpuSample> VmState::vcpu_samples(const std::set<std::string>& live) const {
  std::vector<VcpuSample> out;
  for (const auto& [tid, vcpu] : vcpus_) {
    VcpuSample sample{vcpu.index, vcpu_modes(vcpu.cpu), seconds(vcpu.cpu.wait_ns()), {}, {}};
    for (size_t slot = 0; slot < plan_->slots.size(); ++slot) {
      const EventAttr& e = plan_->slots[slot];
      if (!live.contains(e.name) || vcpu.running_ns[slot] == 0) continue;  // never ran: no value, not zero
      sample.events.push_back({e.name, e.mode, vcpu.counts[slot], seconds(vcpu.enabled_ns[slot]),
                               seconds(vcpu.running_ns[slot])});
    }
    out.push_back(std::move(sample));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
  return out;
}

std::vector<ModeValue> VmState::emulator_cpu() const {
  std::array<uint64_t, 3> split = retired_split_;
  uint64_t unsplit = retired_unsplit_;
  for (const auto& [tid, thread] : emulator_) {
    for (size_t m = 0; m < 3; ++m) split[m] += thread.cpu.split_ns()[m];
    unsplit += thread.cpu.unsplit_ns();
  }
  std::vector<ModeValue> out{{"host_kernel", seconds(split[kHostKernel])},
                             {"host_user", seconds(split[kHostUser])}};
  if (split[kGuest] > 0) out.push_back({"guest", seconds(split[kGuest])});
  if (unsplit > 0) out.push_back({"all", seconds(unsplit)});
  return out;
}

size_t VmState::counter_count() const {
  size_t n = 0;
  for (const auto& [tid, vcpu] : vcpus_) {
    for (const auto& g : vcpu.groups) n += g.fd_count();
  }
  return n;
}

size_t VmState::fd_count() const { return 2 * (vcpus_.size() + emulator_.size()) + counter_count(); }

}  // namespace kvmprof
