#include "agent/profile/profile_store.h"

#include <algorithm>

namespace kvmprof {
namespace {

// FNV-1a over the frames: interning compares the frames themselves, so a collision costs
// only a comparison.
uint64_t hash_frames(const std::vector<uint64_t>& frames) {
  uint64_t h = 1469598103934665603ull;
  for (uint64_t f : frames) h = (h ^ f) * 1099511628211ull;
  return h;
}

constexpr size_t kStackOverhead = sizeof(std::vector<uint64_t>) + 32;  // entry, hash node

}  // namespace

ProfileStore::ProfileStore(ProfileLimits limits, uint64_t start_ns) : limits_(limits), complete_since_ns_(start_ns) {}

void ProfileStore::set_limits(const ProfileLimits& limits) {
  std::lock_guard lock(mu_);
  limits_ = limits;
  while (live_stacks_ > limits_.max_stacks) pop_oldest("max_stacks");
  while (samples_.size() > limits_.max_samples) pop_oldest("max_samples");
}

std::chrono::seconds ProfileStore::window_length() const {
  std::lock_guard lock(mu_);
  return limits_.window;
}

uint32_t ProfileStore::vm_index(const std::string& uuid) {
  auto it = vm_ids_.find(uuid);
  if (it != vm_ids_.end()) return it->second;
  uint32_t id = static_cast<uint32_t>(vms_.size());
  if (free_vms_.empty()) {
    vms_.emplace_back();
  } else {
    id = free_vms_.back();
    free_vms_.pop_back();
  }
  vms_[id] = {uuid, {}};
  vm_ids_[uuid] = id;
  return id;
}

void ProfileStore::set_vm(const std::string& uuid, ProfileVmInfo info) {
  std::lock_guard lock(mu_);
  vms_[vm_index(uuid)].second = std::move(info);
}

bool ProfileStore::has_vm(const std::string& uuid) const {
  std::lock_guard lock(mu_);
  return vm_ids_.contains(uuid);
}

void ProfileStore::forget_vm(const std::string& uuid) {
  std::lock_guard lock(mu_);
  auto it = vm_ids_.find(uuid);
  if (it == vm_ids_.end()) return;
  const uint32_t vm = it->second;
  std::deque<Stored> kept;
  for (const Stored& s : samples_) {
    if (s.vm == vm) release(s.stack);
    else kept.push_back(s);
  }
  samples_.swap(kept);
  vm_ids_.erase(it);
  vms_[vm] = {};
  free_vms_.push_back(vm);  // no sample refers to it any more
}

void ProfileStore::add(const std::string& uuid, std::vector<NewSample>& batch) {
  std::lock_guard lock(mu_);
  auto known = vm_ids_.find(uuid);
  if (known == vm_ids_.end()) return;
  const uint32_t vm = known->second;
  for (NewSample& n : batch) {
    std::vector<uint64_t> frames;
    frames.reserve(1 + n.kernel_stack.size() + n.user_stack.size());
    frames.push_back(n.ip);
    frames.insert(frames.end(), n.kernel_stack.begin(), n.kernel_stack.end());
    frames.insert(frames.end(), n.user_stack.begin(), n.user_stack.end());
    const uint32_t stack = intern(frames, static_cast<uint32_t>(n.kernel_stack.size()));
    while (samples_.size() >= limits_.max_samples) pop_oldest("max_samples");
    samples_.push_back({next_seq_++, n.time_ns, n.nanos, vm, stack, n.pid, n.tid,
                        n.vcpu ? static_cast<int32_t>(*n.vcpu) : -1, n.mode});
  }
}

// The stack's id with one more reference; a new stack when the table is full first makes the
// oldest samples go until one is free (every stack in the table belongs to a sample).
uint32_t ProfileStore::intern(std::vector<uint64_t>& frames, uint32_t kernel) {
  const uint64_t h = hash_frames(frames);
  auto [first, last] = stack_ids_.equal_range(h);
  for (auto it = first; it != last; ++it) {
    Interned& s = stacks_[it->second];
    if (s.kernel == kernel && s.frames == frames) {
      ++s.refs;
      return it->second;
    }
  }
  while (live_stacks_ >= limits_.max_stacks && !samples_.empty()) pop_oldest("max_stacks");
  uint32_t id;
  if (free_stacks_.empty()) {
    id = static_cast<uint32_t>(stacks_.size());
    stacks_.emplace_back();
  } else {
    id = free_stacks_.back();
    free_stacks_.pop_back();
  }
  stack_frames_ += frames.size();
  stacks_[id] = Interned{std::move(frames), kernel, 1, stacks_[id].generation + 1};
  stack_ids_.emplace(h, id);
  ++live_stacks_;
  return id;
}

// A bound drops the oldest sample: the samples are complete only from its time on.
void ProfileStore::pop_oldest(const char* reason) {
  if (samples_.empty()) return;
  complete_since_ns_ = std::max(complete_since_ns_, samples_.front().time_ns);
  release(samples_.front().stack);
  samples_.pop_front();
  ++dropped_[reason];
}

void ProfileStore::release(uint32_t id) {
  Interned& s = stacks_[id];
  if (--s.refs > 0) return;
  auto [first, last] = stack_ids_.equal_range(hash_frames(s.frames));
  for (auto it = first; it != last; ++it) {
    if (it->second == id) {
      stack_ids_.erase(it);
      break;
    }
  }
  stack_frames_ -= s.frames.size();
  s.frames = {};  // its memory goes now, not when the slot is reused
  free_stacks_.push_back(id);
  --live_stacks_;
}

// Samples arrive nearly in time order (rings are drained one after another), so the front is
// the oldest but for a few; window() filters by time anyway.
void ProfileStore::trim(uint64_t now_ns) {
  std::lock_guard lock(mu_);
  const auto window = static_cast<uint64_t>(std::chrono::nanoseconds(limits_.window).count());
  const uint64_t oldest = now_ns > window ? now_ns - window : 0;
  while (!samples_.empty() && samples_.front().time_ns < oldest) {
    release(samples_.front().stack);
    samples_.pop_front();
  }
}

ProfileWindow ProfileStore::window(uint64_t since_ns, const std::set<std::string>& uuids) const {
  ProfileWindow out;
  std::map<std::string, size_t> vms;              // uuid -> index into out.vms
  std::unordered_map<uint64_t, size_t> stacks;    // (generation, stack id) -> index into out.stacks
  std::optional<uint64_t> cursor = 0;
  while (cursor) cursor = copy_chunk(*cursor, since_ns, uuids, out, vms, stacks);
  return out;
}

std::optional<uint64_t> ProfileStore::copy_chunk(uint64_t cursor, uint64_t since_ns, const std::set<std::string>& uuids,
                                                 ProfileWindow& out, std::map<std::string, size_t>& vms,
                                                 std::unordered_map<uint64_t, size_t>& stacks) const {
  std::lock_guard lock(mu_);
  out.complete_since_ns = std::max(out.complete_since_ns, complete_since_ns_);
  auto it = std::lower_bound(samples_.begin(), samples_.end(), cursor,
                             [](const Stored& s, uint64_t seq) { return s.seq < seq; });
  std::vector<std::optional<size_t>> slots(vms_.size());  // VM slots mean the same only under this hold
  std::vector<bool> looked(vms_.size());
  for (size_t n = 0; it != samples_.end() && n < kChunk; ++it, ++n) {
    const Stored& s = *it;
    if (s.time_ns < since_ns) continue;
    if (!looked[s.vm]) {
      looked[s.vm] = true;
      const auto& [uuid, info] = vms_[s.vm];
      if (uuids.empty() || uuids.contains(uuid)) {
        auto [v, fresh] = vms.try_emplace(uuid, out.vms.size());
        if (fresh) out.vms.push_back(vms_[s.vm]);
        slots[s.vm] = v->second;
      }
    }
    if (!slots[s.vm]) continue;
    const uint64_t key = uint64_t{stacks_[s.stack].generation} << 32 | s.stack;
    auto [st, fresh] = stacks.try_emplace(key, out.stacks.size());
    if (fresh) out.stacks.push_back(stack_of(s.stack));
    out.samples.push_back({s.time_ns, *slots[s.vm], st->second, s.pid, s.tid,
                           s.vcpu < 0 ? std::nullopt : std::optional<unsigned>(static_cast<unsigned>(s.vcpu)), s.mode,
                           s.nanos});
  }
  if (it == samples_.end()) return std::nullopt;
  return it->seq;
}

SampleStack ProfileStore::stack_of(uint32_t id) const {
  const Interned& s = stacks_[id];
  auto kernel_end = s.frames.begin() + 1 + s.kernel;
  return SampleStack{s.frames.front(), {s.frames.begin() + 1, kernel_end}, {kernel_end, s.frames.end()}};
}

ProfileStoreStats ProfileStore::stats() const {
  std::lock_guard lock(mu_);
  ProfileStoreStats out;
  out.samples = samples_.size();
  out.stacks = live_stacks_;
  out.bytes["samples"] = samples_.size() * sizeof(Stored);
  out.bytes["stacks"] = stacks_.size() * kStackOverhead + stack_frames_ * sizeof(uint64_t);
  out.dropped = dropped_;
  return out;
}

}  // namespace kvmprof
