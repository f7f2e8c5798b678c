#include "agent/collect/event_plan.h"

#include <charconv>
#include <utility>

#include "agent/system/log.h"
#include "agent/system/open_ladder.h"
#include "agent/system/vendor_events.h"

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
  for (auto& c : opened.counters) p.counters.push_back({p.event, c.mode, c.attr});
}

PlannedEvent plan_one(const HostRoot& root, PerfBackend& perf, const EventSpec& spec, GuestMode guest,
                      const HostModel& host, const QuirkTable& quirks) {  // NOLINT(readability-function-size)
  Decision d = decide(resolve_vendor_event(spec), guest, host, quirks);
  PlannedEvent p{spec.text, d.requested, d.precise ? d.precise : spec.mods.precise, d.status, d.semantics, d.reason,
                 std::holds_alternative<TracepointEvent>(spec.kind), {}, {}};
  if (d.counters.empty()) return p;
  if (d.precise > 0) {
    not_counted(p, DecisionStatus::kUnsupported, "precise events are sampling events; this agent counts only (" + d.reason + ")");
    return p;
  }
  if (const auto* tp = std::get_if<TracepointEvent>(&spec.kind)) {
    auto id = tracepoint_id(root, *tp);
    if (auto* why = std::get_if<std::string>(&id)) {
      not_counted(p, DecisionStatus::kUnsupported, *why);
      return p;
    }
    for (auto& c : d.counters) c.attr.config = std::get<uint64_t>(id);
  }
  resolve_with_kernel(p, perf, d, host);
  return p;
}

}  // namespace

std::variant<uint64_t, std::string> tracepoint_id(const HostRoot& root, const TracepointEvent& tp) {
  bool tracefs_found = false;
  for (const char* dir : kTracingDirs) {
    if (!root.list_dir(std::string(dir) + "/events").ok()) continue;
    tracefs_found = true;
    auto text = root.read_file(std::string(dir) + "/events/" + tp.subsystem + "/" + tp.name + "/id");
    uint64_t id = 0;
    if (text.ok() && std::from_chars(text->data(), text->data() + text->size(), id).ec == std::errc()) return id;
  }
  if (!tracefs_found) return std::string("tracefs is not mounted; run: mount -t tracefs nodev /sys/kernel/tracing");
  return "no tracepoint " + tp.subsystem + ":" + tp.name + " on this kernel (is the module loaded?)";
}

std::vector<PlannedEvent> plan_events(const HostRoot& root, PerfBackend& perf, const std::vector<PolicyEvent>& events,
                                      const HostModel& host, const QuirkTable& quirks) {
  std::vector<PlannedEvent> plan;
  for (const auto& event : events) {
    plan.push_back(plan_one(root, perf, event.spec, event.guest, host, quirks));
    const PlannedEvent& p = plan.back();
    std::string line = "event " + p.event + ": " + std::string(to_string(p.status)) +
                       (p.semantics.empty() ? "" : ", counts " + p.semantics) + (p.reason.empty() ? "" : " (" + p.reason + ")");
    p.counters.empty() || p.status != DecisionStatus::kOk ? log_warning(line) : log_info(line);
  }
  return plan;
}

namespace {

bool is_software(const EventAttr& e) {
  return e.attr.type == PERF_TYPE_SOFTWARE || e.attr.type == PERF_TYPE_TRACEPOINT;
}

}  // namespace

std::vector<std::vector<size_t>> partition_slots(const std::vector<EventAttr>& slots, size_t max_group_size) {
  std::vector<std::vector<size_t>> groups;
  std::vector<size_t> software;
  std::vector<size_t> hardware;
  for (size_t i = 0; i < slots.size(); ++i) {
    if (is_software(slots[i])) {
      software.push_back(i);
      continue;
    }
    // Start a new group when this event's counters would not fit with the current ones.
    size_t event_size = 1;
    while (i + event_size < slots.size() && slots[i + event_size].name == slots[i].name) ++event_size;
    if (!hardware.empty() && hardware.size() + event_size > max_group_size) groups.push_back(std::exchange(hardware, {}));
    for (size_t j = 0; j < event_size; ++j) hardware.push_back(i + j);
    i += event_size - 1;
  }
  if (!hardware.empty()) groups.push_back(std::move(hardware));
  if (!software.empty()) groups.insert(groups.begin(), std::move(software));
  return groups;
}

PolicyPlan make_policy_plan(const Policy& policy, std::vector<PlannedEvent> events, size_t max_group_size) {
  PolicyPlan plan{policy.name, policy.match, policy.aggregation, policy.priority, policy.interval, std::move(events), {}, {}};
  for (const auto& e : plan.events) plan.slots.insert(plan.slots.end(), e.counters.begin(), e.counters.end());
  plan.groups = partition_slots(plan.slots, max_group_size);
  return plan;
}

std::string PolicyPlan::key() const {
  std::string key;
  for (const auto& s : slots) {
    key += s.name + "|" + s.mode + "|" + std::to_string(s.attr.type) + "|" + std::to_string(s.attr.config) + "|" +
           std::to_string(s.attr.exclude_guest) + std::to_string(s.attr.exclude_host) + std::to_string(s.attr.exclude_user) +
           std::to_string(s.attr.exclude_kernel) + ";";
  }
  for (const auto& g : groups) key += "g" + std::to_string(g.size());
  return key;
}

}  // namespace kvmprof
