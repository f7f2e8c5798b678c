#include "agent/profile/profile_builder.h"

#include <tuple>

#include "agent/system/log.h"

namespace kvmprof {
namespace {

// Kernel and guest addresses have no file behind them here: one mapping each, over the
// canonical x86-64 halves, as perf names them.
constexpr uint64_t kKernelStart = 0xffff800000000000ull, kUserLimit = 0x0000800000000000ull;
constexpr const char* kKernelFile = "[kernel.kallsyms]";

struct SampleKey {
  size_t vm;
  std::optional<unsigned> vcpu;
  SampleMode mode;
  size_t stack;
  auto operator<=>(const SampleKey&) const = default;
};

// google/perf_data_converter's execution_mode label values.
const char* execution_mode(SampleMode mode) {
  switch (mode) {
    case SampleMode::kHostKernel: return "Host Kernel";
    case SampleMode::kHostUser: return "Host User";
    case SampleMode::kHypervisor: return "Hypervisor";
    case SampleMode::kGuestKernel: return "Guest Kernel";
    case SampleMode::kGuestUser: return "Guest User";
    case SampleMode::kUnknown: break;
  }
  return "Unknown";
}

class Builder {
 public:
  Builder(const ProfileWindow& window, const ProfileScope& scope, Symbolizer& symbolizer, GuestKallsyms& guests)
      : window_(window), scope_(scope), symbolizer_(symbolizer), guests_(guests) {}

  Profile build();

 private:
  void load_guest_symbols();
  void add(const ProfileWindow::Sample& s);
  std::vector<size_t> locations(const ProfileWindow::Sample& s);
  size_t kernel_location(uint64_t addr);
  size_t user_location(pid_t pid, uint64_t addr);
  size_t guest_location(size_t vm, bool kernel, uint64_t addr);
  size_t mapping(ProfileMapping m);
  size_t shared_mapping(std::optional<size_t>& slot, const char* file, uint64_t start, uint64_t limit);
  void add_comments();

  const ProfileWindow& window_;
  const ProfileScope& scope_;
  Symbolizer& symbolizer_;
  GuestKallsyms& guests_;
  Profile p_;
  std::map<SampleKey, size_t> samples_;               // -> index into p_.samples
  std::map<std::pair<size_t, size_t>, std::vector<size_t>> stacks_;  // (vm, stack) -> locations
  std::map<uint64_t, size_t> kernel_;                 // address -> location
  std::map<std::pair<pid_t, uint64_t>, size_t> user_;
  std::map<std::tuple<size_t, bool, uint64_t>, size_t> guest_;
  std::map<pid_t, std::vector<MapEntry>> maps_;       // read once per profile
  std::map<std::pair<pid_t, uint64_t>, size_t> user_mappings_;  // (pid, start) -> mapping
  std::optional<size_t> kernel_mapping_, guest_kernel_mapping_, guest_user_mapping_, unknown_mapping_;
  std::vector<std::shared_ptr<const Kallsyms>> guest_symbols_;  // by VM; null: guest frames stay addresses
  std::set<uint64_t> period_nanos_;
};

Profile Builder::build() {
  symbolizer_.refresh();
  load_guest_symbols();
  for (const auto& s : window_.samples) {
    if (scope_.modes.empty() || scope_.modes.contains(s.mode)) add(s);
  }
  const int64_t seconds_ns = scope_.seconds * 1'000'000'000;
  p_.time_nanos = scope_.end_unix_ns - seconds_ns;
  p_.duration_nanos = seconds_ns;
  for (const auto& [uuid, info] : window_.vms) period_nanos_.insert(info.period_nanos);
  p_.period_nanos = period_nanos_.empty() ? 0 : static_cast<int64_t>(*period_nanos_.rbegin());
  add_comments();
  return std::move(p_);
}

// A VM's guest_kallsyms names its guest kernel frames only when the copy covers the addresses
// sampled: a copy from another boot (KASLR) or kernel is reported and not used.
void Builder::load_guest_symbols() {
  guest_symbols_.resize(window_.vms.size());
  for (size_t vm = 0; vm < window_.vms.size(); ++vm) {
    const auto& [uuid, info] = window_.vms[vm];
    if (info.guest_kallsyms.empty()) continue;
    GuestSymbols loaded = guests_.get(info.guest_kallsyms);
    const std::string who = "guest_kallsyms of VM " + quote(scope_.names.contains(uuid) ? scope_.names.at(uuid) : uuid);
    if (!loaded.symbols) {
      p_.comments.push_back(who + " not used: " + loaded.error);
      continue;
    }
    std::vector<uint64_t> ips;
    for (const auto& s : window_.samples) {
      if (s.vm == vm && s.mode == SampleMode::kGuestKernel) ips.push_back(window_.stacks[s.stack].ip);
    }
    GuestMatch m = match(*loaded.symbols, ips);
    const std::string counts = std::to_string(m.covered) + " of " + std::to_string(m.total) + " guest kernel addresses";
    if (m.trusted()) {
      guest_symbols_[vm] = loaded.symbols;
      p_.comments.push_back(who + " names " + counts);
    } else if (m.total > 0) {
      p_.comments.push_back(who + " not used: its symbols cover only " + counts +
                            "; copy /proc/kallsyms from the guest's current boot (as root)");
      if (guests_.first_mismatch(info.guest_kallsyms, uuid)) log_warning("profile: " + p_.comments.back());
    }
  }
}

void Builder::add(const ProfileWindow::Sample& s) {
  auto [it, fresh] = samples_.try_emplace(SampleKey{s.vm, s.vcpu, s.mode, s.stack}, p_.samples.size());
  if (fresh) {
    const std::string& uuid = window_.vms[s.vm].first;
    ProfileSample out;
    out.locations = locations(s);
    out.labels = {{"domain", scope_.names.contains(uuid) ? scope_.names.at(uuid) : uuid}, {"uuid", uuid}};
    if (s.vcpu) out.num_labels.push_back({"vcpu", *s.vcpu});
    else out.labels.push_back({"thread", "emulator"});
    out.labels.push_back({"execution_mode", execution_mode(s.mode)});
    p_.samples.push_back(std::move(out));
  }
  ProfileSample& out = p_.samples[it->second];
  out.count += 1;
  out.nanos += static_cast<int64_t>(s.nanos);
}

// Leaf first: the kernel frames, then the user frames; a sample without a callchain (or a user
// sample whose user callchain was not asked for) is its IP alone. Guest samples are their IP.
std::vector<size_t> Builder::locations(const ProfileWindow::Sample& s) {
  auto [it, fresh] = stacks_.try_emplace({s.vm, s.stack});
  if (!fresh) return it->second;
  const SampleStack& stack = window_.stacks[s.stack];
  std::vector<size_t>& out = it->second;
  if (is_guest(s.mode)) {
    out.push_back(guest_location(s.vm, s.mode == SampleMode::kGuestKernel, stack.ip));
    return out;
  }
  for (uint64_t addr : stack.kernel) out.push_back(kernel_location(addr));
  for (uint64_t addr : stack.user) out.push_back(user_location(s.pid, addr));
  // No callchain: the IP alone, by its address (an unknown or hypervisor mode says nothing).
  if (out.empty()) out.push_back(stack.ip >= kKernelStart ? kernel_location(stack.ip) : user_location(s.pid, stack.ip));
  return out;
}

size_t Builder::kernel_location(uint64_t addr) {
  auto [it, fresh] = kernel_.try_emplace(addr, 0);
  if (!fresh) return it->second;
  ProfileLocation loc{addr, shared_mapping(kernel_mapping_, kKernelFile, kKernelStart, UINT64_MAX),
                      FrameKind::kHostKernel, "", kKernelFile};
  if (auto name = symbolizer_.kernel(addr)) {
    loc.function = name->function;
    if (!name->module.empty()) loc.filename = "[" + name->module + "]";
    p_.mappings[loc.mapping - 1].has_functions = true;
  }
  p_.locations.push_back(std::move(loc));
  return it->second = p_.locations.size();
}

size_t Builder::user_location(pid_t pid, uint64_t addr) {
  auto [it, fresh] = user_.try_emplace({pid, addr}, 0);
  if (!fresh) return it->second;
  auto maps = maps_.find(pid);
  if (maps == maps_.end()) maps = maps_.emplace(pid, symbolizer_.maps(pid)).first;  // empty: the process is gone
  ProfileLocation loc{addr, 0, FrameKind::kHostUser, "", ""};
  if (const MapEntry* map = find_map(maps->second, addr)) {
    UserName name = symbolizer_.user(pid, *map, addr);
    auto [m, new_mapping] = user_mappings_.try_emplace({pid, map->start}, 0);
    if (new_mapping) {
      // Anonymous executable memory (JIT code, such as TCG's translated guest code) as perf names it.
      const std::string file = map->path.empty() ? "//anon" : map->path + (map->deleted ? " (deleted)" : "");
      m->second = mapping({map->start, map->end, map->offset, file, name.build_id, false});
    }
    loc.mapping = m->second;
    loc.function = name.function;
    loc.filename = p_.mappings[m->second - 1].file;
    if (!name.function.empty()) p_.mappings[loc.mapping - 1].has_functions = true;
  } else {
    loc.mapping = shared_mapping(unknown_mapping_, "[unknown]", 0, kUserLimit);
  }
  p_.locations.push_back(std::move(loc));
  return it->second = p_.locations.size();
}

size_t Builder::guest_location(size_t vm, bool kernel, uint64_t addr) {
  auto [it, fresh] = guest_.try_emplace({vm, kernel, addr}, 0);
  if (!fresh) return it->second;
  const char* file = kernel ? "[guest_kernel]" : "[guest_user]";
  size_t m = kernel ? shared_mapping(guest_kernel_mapping_, file, kKernelStart, UINT64_MAX)
                    : shared_mapping(guest_user_mapping_, file, 0, kUserLimit);
  ProfileLocation loc{addr, m, FrameKind::kGuest, "", file};
  const KernelSymbol* sym = kernel && guest_symbols_[vm] ? guest_symbols_[vm]->find(addr) : nullptr;
  if (sym) {
    loc.function = sym->name;
    p_.mappings[m - 1].has_functions = true;
  }
  p_.locations.push_back(std::move(loc));
  return it->second = p_.locations.size();
}

size_t Builder::mapping(ProfileMapping m) {
  p_.mappings.push_back(std::move(m));
  return p_.mappings.size();
}

size_t Builder::shared_mapping(std::optional<size_t>& slot, const char* file, uint64_t start, uint64_t limit) {
  if (!slot) slot = mapping({start, limit, 0, file, "", false});
  return *slot;
}

void Builder::add_comments() {
  if (kernel_mapping_ && symbolizer_.kernel_addresses_hidden()) {
    p_.comments.push_back("host kernel frames are addresses: /proc/kallsyms shows every address as 0 to this agent "
                          "(kernel.kptr_restrict; the agent needs CAP_SYSLOG or root to read them)");
  }
  if (period_nanos_.contains(0)) {
    p_.default_sample_type = "samples";
    p_.comments.push_back("cpu/nanoseconds is 0 for samples of an event sampled every N events: its CPU time per "
                          "sample is unknown (use frequency, or cpu-clock)");
  }
  const uint64_t asked = std::min<uint64_t>(scope_.end_mono_ns, static_cast<uint64_t>(scope_.seconds) * 1'000'000'000);
  if (window_.complete_since_ns > scope_.end_mono_ns - asked) {
    const uint64_t held = scope_.end_mono_ns - std::min(scope_.end_mono_ns, window_.complete_since_ns);
    p_.comments.push_back("samples are complete for the last " + std::to_string(held / 1'000'000'000) +
                          " s only: the agent started then, or profiles.max_samples or max_stacks dropped older "
                          "ones (kvmprof_profile_samples_dropped_total)");
  }
}

}  // namespace

Profile build_profile(const ProfileWindow& window, const ProfileScope& scope, Symbolizer& symbolizer,
                      GuestKallsyms& guests) {
  return Builder(window, scope, symbolizer, guests).build();
}

}  // namespace kvmprof
