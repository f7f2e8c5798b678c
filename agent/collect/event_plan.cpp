#include "agent/collect/event_plan.h"

#include <cerrno>

#include <algorithm>
#include <charconv>
#include <utility>

#include "agent/system/log.h"
#include "agent/system/open_ladder.h"
#include "agent/system/vendor_events.h"
#include "policy/sampling_decision.h"

namespace kvmprof {
namespace {

constexpr const char* kTracingDirs[] = {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"};

void not_counted(PlannedEvent& p, DecisionStatus status, std::string reason) {
  p.status = status;
  p.reason = std::move(reason);
  p.semantics.clear();
  p.counters.clear();
}

// Opens the decision on this thread to learn what the kernel accepts, then closes it again.
void resolve_with_kernel(PlannedEvent& p, PerfBackend& perf, const Decision& d, const HostModel& host) {
  OpenedDecision opened = open_decision(perf, d, 0, -1, -1, host);
  for (const auto& s : opened.steps) {
    log_warning("event " + p.event + ": " + s.action + (s.quirk.empty() ? "" : " [" + s.quirk + "]"));
    p.fallbacks.push_back(s.code);
  }
  if (opened.counters.empty()) return not_counted(p, opened.status, opened.reason);
  p.status = opened.status;
  p.semantics = opened.semantics;
  p.reason = opened.reason;
  for (auto& c : opened.counters) p.counters.push_back({p.event, c.mode, c.attr, c.pmu});
}

PlannedEvent planned(const EventSpec& spec, const Decision& d) {
  return PlannedEvent{spec.text, d.requested, d.precise ? d.precise : spec.mods.precise, d.status, d.semantics, d.reason,
                      std::holds_alternative<TracepointEvent>(spec.kind), {}, {}};
}

// The decision's attrs completed (a tracepoint's id) and opened once through the ladder.
void resolve(PlannedEvent& p, const HostRoot& root, PerfBackend& perf, const EventSpec& spec, Decision& d,
             const HostModel& host) {
  if (const auto* tp = std::get_if<TracepointEvent>(&spec.kind)) {
    auto id = tracepoint_id(root, *tp);
    if (auto* why = std::get_if<std::string>(&id)) {
      return not_counted(p, DecisionStatus::kUnsupported, *why);
    }
    for (auto& c : d.counters) c.attr.config = std::get<uint64_t>(id);
  }
  resolve_with_kernel(p, perf, d, host);
}

PlannedEvent plan_one(const HostRoot& root, PerfBackend& perf, const EventSpec& spec, GuestMode guest,
                      const HostModel& host, const QuirkTable& quirks) {
  Decision d = decide(resolve_vendor_event(spec), guest, host, quirks);
  PlannedEvent p = planned(spec, d);
  if (d.counters.empty()) return p;
  if (d.precise > 0) {
    not_counted(p, DecisionStatus::kUnsupported, "precise events are sampling events: give them as a policy's "
                                                 "'sampling: {event: ...}' (" + d.reason + ")");
    return p;
  }
  resolve(p, root, perf, spec, d, host);
  return p;
}

void log_plan(const std::string& what, const PlannedEvent& p) {
  std::string line = what + " " + p.event + ": " + std::string(to_string(p.status)) +
                     (p.semantics.empty() ? "" : ", counts " + p.semantics) + (p.reason.empty() ? "" : " (" + p.reason + ")");
  p.counters.empty() || p.status != DecisionStatus::kOk ? log_warning(line) : log_info(line);
}

}  // namespace

std::variant<uint64_t, std::string> tracepoint_id(const HostRoot& root, const TracepointEvent& tp) {
  bool tracefs_found = false;
  std::string denied;  // a tracing directory this user may not read
  for (const char* dir : kTracingDirs) {
    auto events = root.list_dir(std::string(dir) + "/events");
    if (!events.ok()) {
      if (events.error().err == EACCES && denied.empty()) denied = dir;
      continue;
    }
    tracefs_found = true;
    auto text = root.read_file(std::string(dir) + "/events/" + tp.subsystem + "/" + tp.name + "/id");
    uint64_t id = 0;
    if (text.ok() && std::from_chars(text->data(), text->data() + text->size(), id).ec == std::errc()) return id;
    if (!text.ok() && text.error().err == EACCES && denied.empty()) denied = dir;
  }
  if (!denied.empty()) {
    return "this user may not read " + denied + " (tracefs is root's, mode 0700): tracepoints need CAP_DAC_READ_SEARCH or root";
  }
  if (!tracefs_found) return std::string("tracefs is not mounted; run: mount -t tracefs nodev /sys/kernel/tracing");
  return "no tracepoint " + tp.subsystem + ":" + tp.name + " on this kernel (is the module loaded?)";
}

PlannedEvent plan_event(const HostRoot& root, PerfBackend& perf, const PolicyEvent& event, const HostModel& host,
                        const QuirkTable& quirks) {
  PlannedEvent p = plan_one(root, perf, event.spec, event.guest, host, quirks);
  log_plan("event", p);
  return p;
}

SamplingPlan plan_sampling(const HostRoot& root, PerfBackend& perf, const SamplingConfig& sampling, const HostModel& host,
                           const QuirkTable& quirks) {
  EventSpec spec = resolve_vendor_event(sampling.event.spec);
  SamplingConfig resolved = sampling;
  resolved.event.spec = spec;
  Decision d = decide_sampling(resolved, host, quirks);
  SamplingPlan plan{planned(sampling.event.spec, d), sampling.threads, sampling.data_pages(), sampling.guest_kallsyms};
  if (!d.counters.empty()) resolve(plan.event, root, perf, spec, d, host);
  log_plan("sampling", plan.event);
  return plan;
}

std::vector<PlannedEvent> plan_events(const HostRoot& root, PerfBackend& perf, const std::vector<PolicyEvent>& events,
                                      const HostModel& host, const QuirkTable& quirks) {
  std::vector<PlannedEvent> plan;
  for (const auto& event : events) plan.push_back(plan_event(root, perf, event, host, quirks));
  return plan;
}

// Software events and tracepoints join any group (kernel/events/core.c perf_event_open: "Allow
// the addition of software events to hw groups"), so they share one. Hardware counters are
// grouped per PMU, because the kernel refuses a group that mixes hardware PMUs (cpu_core and
// cpu_atom on a hybrid CPU), in groups of at most max_group_size, an event's host/guest pair together.
std::vector<std::vector<size_t>> partition_slots(const std::vector<EventAttr>& slots, size_t max_group_size) {
  std::vector<std::vector<size_t>> groups;
  std::vector<size_t> software;
  std::vector<std::pair<std::string, std::vector<size_t>>> filling;  // per PMU, in order of first use
  for (size_t i = 0; i < slots.size(); ++i) {
    if (slots[i].pmu.empty()) {
      software.push_back(i);
      continue;
    }
    size_t n = 1;  // this event's counters on this PMU
    while (i + n < slots.size() && slots[i + n].name == slots[i].name && slots[i + n].pmu == slots[i].pmu) ++n;
    auto it = std::find_if(filling.begin(), filling.end(), [&](const auto& f) { return f.first == slots[i].pmu; });
    if (it == filling.end()) it = filling.insert(filling.end(), {slots[i].pmu, {}});
    if (!it->second.empty() && it->second.size() + n > max_group_size) groups.push_back(std::exchange(it->second, {}));
    for (size_t j = 0; j < n; ++j) it->second.push_back(i + j);
    i += n - 1;
  }
  for (auto& [pmu, members] : filling) {
    if (!members.empty()) groups.push_back(std::move(members));
  }
  if (!software.empty()) groups.insert(groups.begin(), std::move(software));
  return groups;
}

PolicyPlan make_policy_plan(const Policy& policy, std::vector<PlannedEvent> events, size_t max_group_size) {
  PolicyPlan plan{policy.name, policy.match, policy.aggregation, policy.priority, policy.interval, std::move(events), {}, {}, {}};
  for (const auto& e : plan.events) plan.slots.insert(plan.slots.end(), e.counters.begin(), e.counters.end());
  plan.groups = partition_slots(plan.slots, max_group_size);
  return plan;
}

std::string PolicyPlan::key() const {
  std::string key;
  for (const auto& s : slots) {
    key += s.name + "|" + s.mode + "|" + s.pmu + "|" + std::to_string(s.attr.type) + "|" + std::to_string(s.attr.config) + "|" +
           std::to_string(s.attr.exclude_guest) + std::to_string(s.attr.exclude_host) + std::to_string(s.attr.exclude_user) +
           std::to_string(s.attr.exclude_kernel) + ";";
  }
  for (const auto& g : groups) key += "g" + std::to_string(g.size());
  return key;
}

std::string SamplingPlan::key() const {
  std::string key = event.event + "|" + std::string(to_string(threads)) + "|" + std::to_string(data_pages);
  for (const auto& c : event.counters) {
    const perf_event_attr& a = c.attr;
    key += ";" + c.mode + "|" + std::to_string(a.type) + "|" + std::to_string(a.config) + "|" + std::to_string(a.sample_type) +
           "|" + std::to_string(a.freq) + "|" + std::to_string(a.sample_period) + "|" + std::to_string(a.exclude_guest) +
           std::to_string(a.exclude_host) + std::to_string(a.exclude_user) + std::to_string(a.exclude_kernel) +
           std::to_string(a.exclude_callchain_user) + std::to_string(a.precise_ip) + std::to_string(a.use_clockid);
  }
  return key;
}

bool PolicyPlan::same_as(const PolicyPlan& other) const {
  auto sampling_key = [](const PolicyPlan& p) { return p.sampling ? p.sampling->key() : ""; };
  return key() == other.key() && aggregation == other.aggregation && interval == other.interval &&
         sampling_key(*this) == sampling_key(other);
}

}  // namespace kvmprof
