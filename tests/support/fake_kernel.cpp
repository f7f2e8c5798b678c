#include "tests/support/fake_kernel.h"

#include <sys/mman.h>
#include <unistd.h>

#include <time.h>

#include <charconv>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <thread>

namespace kvmprof::testing {
namespace {

constexpr unsigned kIntelMaxPrecise = 3;
constexpr unsigned kAmdMaxPrecise = 2;
constexpr std::string_view kMemfdPrefix = "/memfd:perf-fake-";

// The hardware PMU an event counts on (the sysfs type), 0 for software events and tracepoints:
// generic hardware and cache events carry a hybrid PMU in config[63:32]
// (include/uapi/linux/perf_event.h PERF_PMU_TYPE_SHIFT), else they go to the core PMU.
uint32_t pmu_of(const perf_event_attr& a) {
  if (a.type == PERF_TYPE_SOFTWARE || a.type == PERF_TYPE_TRACEPOINT) return 0;
  if (a.type == PERF_TYPE_HARDWARE || a.type == PERF_TYPE_HW_CACHE) {
    auto ext = static_cast<uint32_t>(a.config >> PERF_PMU_TYPE_SHIFT);
    return ext ? ext : kCorePmuType;
  }
  return a.type == PERF_TYPE_RAW ? kCorePmuType : a.type;
}

bool core_event(const perf_event_attr& a) { return pmu_of(a) == kCorePmuType || pmu_of(a) == kAtomPmuType; }
bool sampling(const perf_event_attr& a) { return a.freq || a.sample_period != 0; }
bool has_exclude_bits(const perf_event_attr& a) { return a.exclude_guest || a.exclude_host; }

Rule precise_limit(unsigned max, const char* source) {
  return {source, [max](const perf_event_attr& a) { return a.precise_ip > max ? EOPNOTSUPP : 0; }};
}

Rule precise_needs_sampling() {
  return {"arch/x86/events/core.c x86_pmu_hw_config(): precise events must be sampling events",
          [](const perf_event_attr& a) { return a.precise_ip && !sampling(a) ? EINVAL : 0; }};
}

Rule uncore_no_exclude() {
  return {"arch/x86/events/intel/uncore.c uncore_pmu_event_init(): exclude bits -> EINVAL (cadvisor#2640)",
          [](const perf_event_attr& a) { return a.type == kUncorePmuType && has_exclude_bits(a) ? EINVAL : 0; }};
}

// Attr fields newer kernels added are reserved bits to older ones: perf_copy_attr() -> EINVAL.
Rule no_use_clockid() {
  return {"use_clockid is a reserved bit before 4.1 (commit 34f439278cef): EINVAL",
          [](const perf_event_attr& a) { return a.use_clockid ? EINVAL : 0; }};
}

Rule no_sample_identifier() {
  return {"PERF_SAMPLE_IDENTIFIER is above PERF_SAMPLE_MAX before 3.12 (commit ff3d527cebc1): EINVAL",
          [](const perf_event_attr& a) { return (a.sample_type & PERF_SAMPLE_IDENTIFIER) ? EINVAL : 0; }};
}

Error refused(int err, const std::string& why) {
  errno = err;
  return system_error("perf_event_open (" + why + ")");
}

}  // namespace

FakeKernel::FakeKernel(FakeKernel&& other) noexcept
    : count_for(std::move(other.count_for)), enabled_ns(other.enabled_ns), running_ns(other.running_ns),
      open_delay(other.open_delay), throw_on_read(other.throw_on_read.load()), read_errno(other.read_errno.load()), name_(std::move(other.name_)),
      rules_(std::move(other.rules_)), counters_per_group_(other.counters_per_group_),
      events_(std::move(other.events_)), exited_(std::move(other.exited_)), denied_(std::move(other.denied_)),
      calls_(std::move(other.calls_)),
      next_id_(other.next_id_), reads_(other.reads_), rings_(std::move(other.rings_)) {}

// The event id behind an fd, from the memfd's name; 0 when the fd is not one of ours.
uint64_t FakeKernel::id_of(int fd) const {
  std::error_code ec;
  auto target = std::filesystem::read_symlink("/proc/self/fd/" + std::to_string(fd), ec).string();
  if (ec || !target.starts_with(kMemfdPrefix)) return 0;
  uint64_t id = 0;
  std::from_chars(target.data() + kMemfdPrefix.size(), target.data() + target.size(), id);
  return id;
}

// Events whose fd is still open somewhere in this process: closing the last fd ends an event
// (kernel/events/core.c perf_release), whatever number the fd had or gets reused for.
std::set<uint64_t> FakeKernel::live_ids() const {
  std::set<uint64_t> ids;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    int fd = 0;
    auto name = entry.path().filename().string();
    std::from_chars(name.data(), name.data() + name.size(), fd);
    if (uint64_t id = id_of(fd); events_.contains(id)) ids.insert(id);
  }
  return ids;
}

// Group checks of kernel/events/core.c perf_event_open() and arch/x86/events/core.c.
int FakeKernel::check_group(const perf_event_attr& attr, pid_t tid, int group_fd) const {
  auto leader = events_.find(id_of(group_fd));
  if (leader == events_.end()) return EBADF;
  if (leader->second.tid != tid) return EINVAL;  // "Make sure we're both on the same task"
  auto live = live_ids();
  unsigned hardware = pmu_of(attr) ? 1 : 0;
  for (uint64_t id : live) {
    const Event& member = events_.at(id);
    if (member.leader != leader->first || !pmu_of(member.attr)) continue;
    // A group's hardware events share one PMU context: a cpu_atom event cannot join a
    // cpu_core group (6.1: group_leader->ctx != ctx -> EINVAL; 6.2+: pmu_ctx->pmu != pmu).
    if (pmu_of(attr) && pmu_of(member.attr) != pmu_of(attr)) return EINVAL;
    ++hardware;
  }
  // validate_group(): a group that cannot fit the PMU's counters at once is refused EINVAL.
  return hardware > counters_per_group_ ? EINVAL : 0;
}

Result<Fd> FakeKernel::open(perf_event_attr& attr, pid_t tid, int, int group_fd) {
  std::this_thread::sleep_for(open_delay);
  std::lock_guard lock(mu_);
  auto refuse = [&](int err, const std::string& why) {
    calls_.emplace_back(attr, err);
    return refused(err, name_ + ": " + why);
  };
  // find_lively_task_by_vpid(): a thread that exited is ESRCH.
  if (exited_.contains(tid)) return refuse(ESRCH, "no such thread");
  // perf_event_open() -> ptrace_may_access(PTRACE_MODE_READ_REALCREDS) on the target: EACCES.
  if (denied_.contains(tid)) return refuse(EACCES, "no ptrace access to the thread");
  for (const auto& rule : rules_) {
    if (int err = rule.errno_for(attr)) return refuse(err, rule.source);
  }
  if (group_fd >= 0) {
    if (int err = check_group(attr, tid, group_fd)) return refuse(err, "group rules (kernel/events/core.c perf_event_open)");
  }
  calls_.emplace_back(attr, 0);
  const uint64_t id = next_id_++;
  Fd fd(::memfd_create(("perf-fake-" + std::to_string(id)).c_str(), MFD_CLOEXEC));
  const auto initial = static_cast<uint64_t>(static_cast<double>(count_for(attr)) * static_cast<double>(running_ns) / 1e9);
  events_[id] = Event{attr, tid, group_fd < 0 ? id : id_of(group_fd), initial, enabled_ns, running_ns};
  return fd;
}

// PERF_FORMAT_GROUP|ID|TOTAL_TIME_ENABLED|TOTAL_TIME_RUNNING: nr, enabled, running, then
// (value, id) per member; the times are the leader's (kernel/events/core.c perf_read_group).
Result<size_t> FakeKernel::read(const Fd& fd, std::span<std::byte> buf) {
  if (throw_on_read) throw std::logic_error("fake kernel: read failed on purpose");
  if (read_errno) return refused(read_errno, "read failed on purpose");
  std::lock_guard lock(mu_);
  ++reads_;
  auto leader = events_.find(id_of(fd.get()));
  if (leader == events_.end()) return refused(EBADF, "not a perf fd");
  std::vector<uint64_t> words{0, leader->second.enabled, leader->second.running};
  for (uint64_t id : live_ids()) {
    const Event& e = events_.at(id);
    if (e.leader != leader->first) continue;
    ++words[0];
    words.push_back(e.count);
    words.push_back(id);
  }
  size_t bytes = std::min(buf.size(), words.size() * sizeof(uint64_t));
  std::memcpy(buf.data(), words.data(), bytes);
  return bytes;
}

Result<uint64_t> FakeKernel::event_id(const Fd& fd) {
  std::lock_guard lock(mu_);
  uint64_t id = id_of(fd.get());
  if (!events_.contains(id)) return refused(EBADF, "not a perf fd");
  return id;
}

Result<RingMapping> FakeKernel::map_ring(const Fd& fd, size_t data_pages) {
  std::lock_guard lock(mu_);
  auto event = events_.find(id_of(fd.get()));
  if (event == events_.end()) return refused(EBADF, "not a perf fd");
  // perf_mmap(): the data part must be 2^n pages, else EINVAL.
  if (data_pages == 0 || (data_pages & (data_pages - 1)) != 0) return refused(EINVAL, "data pages not a power of two");
  const perf_event_attr& a = event->second.attr;
  auto writer = std::make_shared<RingWriter>(data_pages, RecordLayout{a.sample_type, a.sample_id_all != 0},
                                             SampleIdValues{0, 0, 0, event->first, 0, 0});
  const size_t bytes = writer->mapping().size();
  std::lock_guard rings(rings_->mu);
  if (rings_->bytes + bytes > mlock_limit) return refused(EPERM, "locked memory over perf_event_mlock_kb");
  rings_->bytes += bytes;
  rings_->by_event[event->first] = writer;
  return RingMapping(writer->mapping().data(), bytes, [state = rings_, id = event->first, writer](std::byte*, size_t n) {
    std::lock_guard unmapping(state->mu);  // munmap: the kernel stops writing into it
    state->by_event.erase(id);
    state->bytes -= n;
  });
}

Result<bool> FakeKernel::disable(const Fd& fd) {
  std::lock_guard lock(mu_);
  auto event = events_.find(id_of(fd.get()));
  if (event == events_.end()) return refused(EBADF, "not a perf fd");
  event->second.disabled = true;
  return true;
}

std::vector<std::pair<uint64_t, std::shared_ptr<RingWriter>>> FakeKernel::rings_of(pid_t tid) const {
  std::vector<std::pair<uint64_t, std::shared_ptr<RingWriter>>> out;
  if (exited_.contains(tid)) return out;
  auto live = live_ids();
  std::lock_guard rings(rings_->mu);
  for (const auto& [id, writer] : rings_->by_event) {
    if (live.contains(id) && events_.at(id).tid == tid && !events_.at(id).disabled) out.emplace_back(id, writer);
  }
  return out;
}

size_t FakeKernel::sample(pid_t tid, uint16_t misc, uint64_t ip, size_t n, const std::vector<uint64_t>& callchain) {
  std::lock_guard lock(mu_);
  size_t written = 0;
  for (const auto& [id, writer] : rings_of(tid)) {
    const perf_event_attr& a = events_.at(id).attr;
    for (size_t i = 0; i < n; ++i) {
      timespec now{};
      ::clock_gettime(CLOCK_MONOTONIC, &now);
      uint64_t ns = static_cast<uint64_t>(now.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(now.tv_nsec);
      SampleFields f{misc, id, ip, static_cast<uint32_t>(tid), static_cast<uint32_t>(tid), ns, 0, 0, 0, a.freq ? 1'000'000 : a.sample_period, callchain};
      written += writer->write(sample_record(f, RecordLayout{a.sample_type, a.sample_id_all != 0})) ? 1 : 0;
    }
  }
  return written;
}

void FakeKernel::write_record(pid_t tid, std::span<const std::byte> record) {
  std::lock_guard lock(mu_);
  for (const auto& [id, writer] : rings_of(tid)) writer->write(record);
}

size_t FakeKernel::rings() const {
  std::lock_guard rings(rings_->mu);
  return rings_->by_event.size();
}

size_t FakeKernel::ring_bytes() const {
  std::lock_guard rings(rings_->mu);
  return rings_->bytes;
}

void FakeKernel::exit_thread(pid_t tid) {
  std::lock_guard lock(mu_);
  exited_.insert(tid);
}

void FakeKernel::deny(pid_t tid) {
  std::lock_guard lock(mu_);
  denied_.insert(tid);
}

void FakeKernel::allow(pid_t tid) {
  std::lock_guard lock(mu_);
  denied_.erase(tid);
}

void FakeKernel::run(pid_t tid, uint64_t ns, uint64_t running, std::optional<uint32_t> on_pmu) {
  std::lock_guard lock(mu_);
  for (uint64_t id : live_ids()) {
    Event& e = events_.at(id);
    if (e.tid != tid || exited_.contains(tid)) continue;
    e.enabled += ns;
    if (on_pmu && pmu_of(e.attr) && pmu_of(e.attr) != *on_pmu) continue;
    e.running += running;
    e.count += static_cast<uint64_t>(static_cast<double>(count_for(e.attr)) * static_cast<double>(running) / 1e9);
  }
}

size_t FakeKernel::open_events() const {
  std::lock_guard lock(mu_);
  return live_ids().size();
}

size_t FakeKernel::reads() const {
  std::lock_guard lock(mu_);
  return reads_;
}

std::vector<std::pair<perf_event_attr, int>> FakeKernel::calls() const {
  std::lock_guard lock(mu_);
  return calls_;
}

FakeKernel linux_3_1() {
  return FakeKernel("linux-3.1", {
      {"exclude_host/exclude_guest are reserved bits before commit a240f76165e6 (3.2): EINVAL",
       [](const perf_event_attr& a) { return has_exclude_bits(a) ? EINVAL : 0; }},
      precise_needs_sampling(),
      no_use_clockid(),
      no_sample_identifier(),
  });
}

FakeKernel linux_3_6() {
  return FakeKernel("linux-3.6", {
      {"2012: precise_ip > 0 refused unless exclude_guest=1 (reverted by a706d965dcfd)",
       [](const perf_event_attr& a) { return a.precise_ip && !a.exclude_guest ? EOPNOTSUPP : 0; }},
      precise_limit(2, "arch/x86/kernel/cpu/perf_event.c x86_pmu_hw_config(): precise_ip > max -> EOPNOTSUPP"),
      precise_needs_sampling(),
      no_use_clockid(),
      no_sample_identifier(),
  });
}

FakeKernel linux_6_1_intel() {
  return FakeKernel("linux-6.1-intel", {
      precise_limit(kIntelMaxPrecise, "6.1 arch/x86/events/core.c x86_pmu_hw_config(): precise_ip > max_precise"),
      precise_needs_sampling(),
      uncore_no_exclude(),
  });
}

FakeKernel linux_6_1_amd_ibs() {
  return FakeKernel("linux-6.1-amd-ibs", {
      precise_limit(kAmdMaxPrecise, "6.1 arch/x86/events/amd/core.c: precise_ip > 2 -> EOPNOTSUPP"),
      {"6.1 arch/x86/events/amd/ibs.c: IBS has PERF_PMU_CAP_NO_EXCLUDE -> EINVAL on exclude bits",
       [](const perf_event_attr& a) { return a.precise_ip && has_exclude_bits(a) ? EINVAL : 0; }},
      precise_needs_sampling(),
  }, 6);  // Zen: 6 core counters (arch/x86/events/amd/core.c num_counters = AMD64_NUM_COUNTERS_CORE)
}

FakeKernel linux_7_mediated() {
  return FakeKernel("linux-7.2-mediated-vpmu", {
      {"7.2 kernel/events/core.c: while a mediated-vPMU VM exists, core events with exclude_guest=0 -> EOPNOTSUPP",
       [](const perf_event_attr& a) { return core_event(a) && !a.exclude_guest ? EOPNOTSUPP : 0; }},
      precise_limit(kIntelMaxPrecise, "7.2 arch/x86/events/core.c x86_pmu_hw_config()"),
      precise_needs_sampling(),
  });
}

FakeKernel linux_6_1_intel_hybrid() {
  return FakeKernel("linux-6.1-intel-hybrid", {
      {"6.1 include/uapi/linux/perf_event.h: extended type in config[63:32] must name a core PMU",
       [](const perf_event_attr& a) {
         uint64_t ext = a.config >> PERF_PMU_TYPE_SHIFT;
         bool generic = a.type == PERF_TYPE_HARDWARE || a.type == PERF_TYPE_HW_CACHE;
         return generic && ext != 0 && ext != kCorePmuType && ext != kAtomPmuType ? ENOENT : 0;
       }},
      precise_limit(kIntelMaxPrecise, "6.1 arch/x86/events/core.c x86_pmu_hw_config()"),
      precise_needs_sampling(),
  });
}

FakeKernel no_hardware_pmu() {
  return FakeKernel("no-hardware-pmu", {
      {"no core PMU registered (kernel/events/core.c perf_init_event): hardware events -> ENOENT",
       [](const perf_event_attr& a) { return a.type != PERF_TYPE_SOFTWARE && a.type != PERF_TYPE_TRACEPOINT ? ENOENT : 0; }},
  });
}

std::vector<FakeKernel> all_personalities() {
  std::vector<FakeKernel> out;
  for (auto make : {linux_3_1, linux_3_6, linux_6_1_intel, linux_6_1_amd_ibs, linux_7_mediated, linux_6_1_intel_hybrid,
                    no_hardware_pmu}) {
    out.push_back(make());
  }
  return out;
}

}  // namespace kvmprof::testing
