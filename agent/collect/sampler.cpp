#include "agent/collect/sampler.h"

#include <sys/epoll.h>
#include <linux/perf_event.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "agent/system/log.h"

namespace kvmprof {
namespace {

constexpr uint64_t kWakeKey = 0;
constexpr int kMaxEvents = 64;
const char* const kLostReasons[] = {"ring_full", "kernel_dropped", "corrupt"};

// The modes a sample can have, by SampleMode value.
constexpr SampleMode kModes[] = {SampleMode::kUnknown,     SampleMode::kHostKernel, SampleMode::kHostUser,
                                 SampleMode::kHypervisor, SampleMode::kGuestKernel, SampleMode::kGuestUser};

// A mode that never had a sample has no series.
void add_values(const std::map<std::string, std::array<uint64_t, 6>>& totals, std::vector<SampleValue>& out) {
  for (const auto& [event, counts] : totals) {
    for (SampleMode mode : kModes) {
      if (uint64_t n = counts[static_cast<size_t>(mode)]) out.push_back({event, std::string(to_string(mode)), n});
    }
  }
}

bool is_clock(const perf_event_attr& a) {
  return a.type == PERF_TYPE_SOFTWARE && (a.config == PERF_COUNT_SW_CPU_CLOCK || a.config == PERF_COUNT_SW_TASK_CLOCK);
}

// One sample's nominal CPU time: the interval at the sampling frequency, or a clock event's
// period (nanoseconds); 0 when the period counts other events (cycles every N).
uint64_t nominal_nanos(const perf_event_attr& a) {
  if (a.freq) return a.sample_freq ? 1'000'000'000 / a.sample_freq : 0;
  return is_clock(a) ? a.sample_period : 0;
}

}  // namespace

Sampler::Sampler(PerfBackend& perf, ErrorCounts& open_errors, ProfileStore& profiles)
    : perf_(perf),
      open_errors_(open_errors),
      profiles_(profiles),
      page_size_(static_cast<size_t>(::sysconf(_SC_PAGESIZE))),
      epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeKey;
  if (!epoll_.valid() || !wake_.valid() || ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) {
    log_error("sampler: no epoll or eventfd (" + errno_name(errno) + "): rings are drained once a second and every "
              "cycle only; raise LimitNOFILE if samples are lost");
    epoll_.reset();
  }
}

bool Sampler::sampling_on(const PolicyPlan* plan) {
  return plan && plan->sampling && !plan->sampling->event.counters.empty();
}

bool Sampler::samples(const PolicyPlan* plan, const VmThread& t) {
  return sampling_on(plan) && (t.vcpu || plan->sampling->threads == SampleThreads::kAll);
}

void Sampler::thread_added(const VmThread& t, const std::shared_ptr<const PolicyPlan>& plan) {
  std::lock_guard lock(mu_);
  Vm& vm = vms_[t.vm];
  if (!vm.plan) use_plan(t.vm, vm, plan);
  auto it = vm.threads.try_emplace(t.tid).first;
  it->second.thread = t;  // a thread found unnamed may turn out to be a vCPU
  if (it->second.rings.empty() && samples(vm.plan.get(), t)) open(vm, it->second, Clock::now());
}

void Sampler::thread_gone(const VmThread& t) {
  std::lock_guard lock(mu_);
  auto vm = vms_.find(t.vm);
  if (vm == vms_.end()) return;
  auto thread = vm->second.threads.find(t.tid);
  if (thread == vm->second.threads.end()) return;
  close(vm->second, thread->second);  // its last records first
  vm->second.threads.erase(thread);
}

void Sampler::plan_changed(const std::string& uuid, const std::shared_ptr<const PolicyPlan>& plan) {
  std::lock_guard lock(mu_);
  Vm& vm = vms_[uuid];
  auto key = [](const PolicyPlan* p) { return p && p->sampling ? p->sampling->key() : ""; };
  bool same = key(vm.plan.get()) == key(plan.get());
  if (!same) {
    for (auto& [tid, thread] : vm.threads) close(vm, thread);  // drained under the old plan's event
  }
  use_plan(uuid, vm, plan);
  if (!same) open_all(vm, Clock::now(), false);
}

// The VM's plan, and what its profile needs to know of it. A VM its policy no longer samples
// has no profile.
void Sampler::use_plan(const std::string& uuid, Vm& vm, const std::shared_ptr<const PolicyPlan>& plan) {
  vm.plan = plan;
  if (!sampling_on(plan.get())) return profiles_.forget_vm(uuid);
  const SamplingPlan& s = *plan->sampling;
  profiles_.set_vm(uuid, {s.event.event, nominal_nanos(s.event.counters.front().attr), s.guest_kallsyms});
}

void Sampler::vm_gone(const std::string& uuid) {
  std::lock_guard lock(mu_);
  auto vm = vms_.find(uuid);
  if (vm == vms_.end()) return;
  for (auto& [tid, thread] : vm->second.threads) close(vm->second, thread);
  vms_.erase(vm);
  profiles_.forget_vm(uuid);
}

void Sampler::open_all(Vm& vm, Clock::time_point now, bool only_due) {
  for (auto& [tid, thread] : vm.threads) {
    if (thread.rings.empty() && samples(vm.plan.get(), thread.thread) && (!only_due || thread.retry.due(now))) {
      open(vm, thread, now);
    }
  }
}

// The event on the thread, one per PMU, each with its ring: all or none.
void Sampler::open(Vm& vm, Thread& thread, Clock::time_point now) {
  const SamplingPlan& plan = *vm.plan->sampling;
  std::vector<Ring> rings;
  auto fail = [&](const Error& e, bool mmap) {
    count_error(open_errors_, plan.event.event, e);
    thread.err = e.err;
    thread.mmap_refused = mmap;
    thread.retry.failed(now);
    if (mmap && e.err == EPERM && !memlock_ceiling_) memlock_ceiling_ = mapped_;
  };
  for (const auto& counter : plan.event.counters) {
    perf_event_attr attr = counter.attr;
    auto fd = perf_.open(attr, thread.thread.tid, -1, -1);
    if (!fd.ok()) return fail(fd.error(), false);
    auto mapping = perf_.map_ring(*fd, plan.data_pages);
    if (!mapping.ok()) return fail(mapping.error(), true);
    Ring ring{next_key_++, std::move(*fd), std::move(*mapping), nullptr, {attr.sample_type, attr.sample_id_all != 0},
              is_clock(attr), attr.use_clockid != 0, nominal_nanos(attr)};
    ring.reader = std::make_unique<RingReader>(ring.mapping.bytes(), page_size_);
    rings.push_back(std::move(ring));
  }
  for (const Ring& ring : rings) {
    mapped_ += ring.mapping.bytes().size();
    rings_[ring.key] = {thread.thread.vm, thread.thread.tid};
    watch(ring);
  }
  thread.rings = std::move(rings);
  thread.err = 0;
  thread.mmap_refused = false;
  thread.retry.succeeded();
}

// Wakes the sampler thread when the ring passes its watermark. A descriptor epoll cannot watch
// (the fake kernel's) is drained by the cycles alone.
void Sampler::watch(const Ring& ring) {
  if (!epoll_.valid()) return;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = ring.key;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, ring.fd.get(), &ev);
}

// The event stops, the ring's last records are taken, then its fd and mapping go (closing the
// fd takes it out of epoll).
void Sampler::close(Vm& vm, Thread& thread) {
  for (Ring& ring : thread.rings) {
    perf_.disable(ring.fd);  // an exited thread's event has stopped anyway
    drain_ring(vm, thread, ring);
    rings_.erase(ring.key);
    mapped_ -= ring.mapping.bytes().size();
  }
  thread.rings.clear();
}

void Sampler::drain(Clock::time_point now) {
  std::lock_guard lock(mu_);
  for (auto& [uuid, vm] : vms_) {
    open_all(vm, now, true);
    drain_vm(vm);
  }
  profiles_.trim(monotonic_ns());
}

void Sampler::wait_and_drain(std::chrono::milliseconds timeout) {
  epoll_event events[kMaxEvents];
  int n = 0;
  if (epoll_.valid()) {
    n = ::epoll_wait(epoll_.get(), events, kMaxEvents, static_cast<int>(timeout.count()));
  } else {
    std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(timeout, std::chrono::seconds(1)));
  }
  std::lock_guard lock(mu_);
  if (n <= 0) {  // timed out (or a signal): the rings below their watermark too
    for (auto& [uuid, vm] : vms_) drain_vm(vm);
    return;
  }
  for (int i = 0; i < n; ++i) {
    if (events[i].data.u64 == kWakeKey) {
      uint64_t count = 0;
      [[maybe_unused]] auto r = ::read(wake_.get(), &count, sizeof count);
      continue;
    }
    auto where = rings_.find(events[i].data.u64);
    if (where == rings_.end()) continue;  // closed since the wait returned
    Vm& vm = vms_.at(where->second.first);
    Thread& thread = vm.threads.at(where->second.second);
    for (Ring& ring : thread.rings) {
      if (ring.key != where->first) continue;
      drain_ring(vm, thread, ring);
      // The thread exited: its event is in PERF_EVENT_STATE_EXIT and polls EPOLLHUP for good
      // (kernel/events/core.c perf_poll, is_event_hup). Stop watching it, or every wait would
      // return at once; the cycle that finds the thread gone drains it a last time and closes it.
      if (events[i].events & (EPOLLHUP | EPOLLERR)) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, ring.fd.get(), nullptr);
    }
  }
}

void Sampler::wake() {
  uint64_t one = 1;
  [[maybe_unused]] auto r = ::write(wake_.get(), &one, sizeof one);
}

void Sampler::drain_vm(Vm& vm) {
  for (auto& [tid, thread] : vm.threads) {
    for (Ring& ring : thread.rings) drain_ring(vm, thread, ring);
  }
}

void Sampler::drain_ring(Vm& vm, const Thread& thread, Ring& ring) {
  if (ring.reader->pending() == 0) return;
  const std::string& event = vm.plan->sampling->event.event;
  ModeCounts& counts = thread.thread.vcpu ? vm.vcpus[*thread.thread.vcpu][event] : vm.emulator[event];
  std::vector<NewSample> batch;
  DrainStats stats = ring.reader->drain(
      [&](std::span<const std::byte> record) { take(vm, thread, counts, record, ring, batch); }, ring.reader->data_size());
  if (stats.corrupt) ++vm.lost["corrupt"];
  if (!batch.empty()) profiles_.add(thread.thread.vm, batch);
}

// A sample counts under its mode and goes to the profiles. Its time is CLOCK_MONOTONIC where
// the kernel took use_clockid; else perf's own clock, and the profiles get the drain's time.
void Sampler::take(Vm& vm, const Thread& thread, ModeCounts& counts, std::span<const std::byte> bytes,
                   const Ring& ring, std::vector<NewSample>& batch) {
  auto record = decode_record(bytes, ring.layout);
  if (!record.ok()) {
    ++vm.lost["corrupt"];
    return;
  }
  if (auto* s = std::get_if<SampleRecord>(&*record)) {
    ++counts[static_cast<size_t>(s->mode)];
    batch.push_back({ring.monotonic ? s->time : monotonic_ns(), thread.thread.pid, thread.thread.tid,
                     thread.thread.vcpu, s->mode, ring.clock ? s->period : ring.nominal_nanos, s->ip,
                     std::move(s->kernel_stack), std::move(s->user_stack)});
  } else if (auto* lost = std::get_if<LostRecord>(&*record)) {
    vm.lost["ring_full"] += lost->lost;
  } else if (auto* dropped = std::get_if<LostSamplesRecord>(&*record)) {
    vm.lost["kernel_dropped"] += dropped->lost;
  } else if (auto* throttle = std::get_if<ThrottleRecord>(&*record)) {
    vm.throttles += throttle->throttled ? 1 : 0;
  }
}

void Sampler::fill(const std::string& uuid, VmSample& out) const {
  std::lock_guard lock(mu_);
  auto it = vms_.find(uuid);
  if (it == vms_.end() || !sampling_on(it->second.plan.get())) return;
  const Vm& vm = it->second;
  std::set<unsigned> running;
  for (const auto& [tid, thread] : vm.threads) {
    if (thread.thread.vcpu) running.insert(*thread.thread.vcpu);
  }
  for (unsigned index : running) {
    auto totals = vm.vcpus.find(index);
    if (totals != vm.vcpus.end()) add_values(totals->second, vcpu_sample(out, index).samples);
  }
  add_values(vm.emulator, out.emulator_samples);
  for (const char* reason : kLostReasons) {
    auto lost = vm.lost.find(reason);
    out.samples_lost[reason] = lost == vm.lost.end() ? 0 : lost->second;
  }
  out.sample_throttles = vm.throttles;
}

std::map<std::string, SamplingHealth> Sampler::health() const {
  std::lock_guard lock(mu_);
  std::map<std::string, SamplingHealth> out;
  for (const auto& [uuid, vm] : vms_) {
    for (const auto& [tid, thread] : vm.threads) {
      if (!samples(vm.plan.get(), thread.thread)) continue;
      SamplingHealth& h = out[vm.plan->sampling->event.event];
      if (!thread.rings.empty()) {
        ++h.open;
        continue;
      }
      ++h.refused;
      h.last_errno = thread.err;
      h.mmap_refused = thread.mmap_refused;
    }
  }
  return out;
}

size_t Sampler::fd_count() const {
  std::lock_guard lock(mu_);
  return rings_.size();
}

size_t Sampler::mapped_bytes() const {
  std::lock_guard lock(mu_);
  return mapped_;
}

std::optional<size_t> Sampler::memlock_ceiling() const {
  std::lock_guard lock(mu_);
  return memlock_ceiling_;
}

void Sampler::forget_memlock_ceiling() {
  std::lock_guard lock(mu_);
  memlock_ceiling_.reset();
}

}  // namespace kvmprof
