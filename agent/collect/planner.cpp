#include "agent/collect/planner.h"

#include "agent/system/log.h"

namespace kvmprof {
namespace {

std::string key_of(const PolicyEvent& event) { return event.spec.text + "|" + std::string(to_string(event.guest)); }

// A sampling event's attrs depend on the whole block, not just the event.
std::string key_of(const SamplingConfig& s) {
  return "sampling|" + key_of(s.event) + "|" + std::to_string(s.frequency.value_or(0)) + "|" +
         std::to_string(s.period.value_or(0)) + "|" + std::string(to_string(s.callchain)) + "|" + std::to_string(s.data_pages()) +
         "|" + std::string(to_string(s.threads));
}

std::vector<const Policy*> all_policies(const AgentConfig& config) {
  std::vector<const Policy*> out;
  for (const auto& p : config.policies) out.push_back(&p);
  out.push_back(&config.default_policy);
  return out;
}

Policy without_events(Policy policy) {
  policy.events.clear();
  return policy;
}

}  // namespace

CollectorPlan unplanned(const AgentConfig& config) {
  CollectorPlan out{{}, make_policy_plan(without_events(config.default_policy), {}, config.limits.max_group_size),
                    config.limits, config.interval, {}};
  for (const auto& p : config.policies) out.policies.push_back(make_policy_plan(without_events(p), {}, config.limits.max_group_size));
  return out;
}

Planner::Planner(HostRoot root, PerfBackend& perf, HostModel host, Done done)
    : root_(std::move(root)), perf_(perf), host_(std::move(host)), done_(std::move(done)), thread_([this] { run(); }) {}

Planner::~Planner() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void Planner::request(AgentConfig config, uint64_t generation) {
  {
    std::lock_guard lock(mu_);
    pending_.emplace(std::move(config), generation);
  }
  wake_.notify_all();
}

void Planner::run() {
  for (;;) {
    std::pair<AgentConfig, uint64_t> job;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stopping_ || pending_; });
      if (stopping_) return;
      job = std::move(*std::exchange(pending_, std::nullopt));
    }
    try {
      auto planned = plan(job.first);
      if (!planned) return;
      done_(std::move(*planned), job.second);
    } catch (const std::exception& e) {
      log_error(std::string("internal error while planning, the running plan stays: ") + e.what());
    }
  }
}

std::optional<CollectorPlan> Planner::plan(const AgentConfig& config) {
  size_t unknown = 0;
  for (const Policy* p : all_policies(config)) {
    for (const auto& e : p->events) unknown += probed_.contains(key_of(e)) ? 0 : 1;  // (and uncounted ones again)
    if (p->sampling) unknown += sampled_.contains(key_of(*p->sampling)) ? 0 : 1;
  }
  if (unknown > 0) log_info("probing " + std::to_string(unknown) + " event(s) in the background; /metrics serves meanwhile");
  CollectorPlan out{{}, {}, config.limits, config.interval, {}};
  for (const Policy* policy : all_policies(config)) {
    auto p = plan_policy(*policy, config.limits.max_group_size);
    if (!p) return std::nullopt;
    if (policy == &config.default_policy) {
      out.default_policy = std::move(*p);
    } else {
      out.policies.push_back(std::move(*p));
    }
  }
  out.open_fallbacks = fallbacks_;
  return out;
}

std::optional<PolicyPlan> Planner::plan_policy(const Policy& policy, size_t max_group_size) {
  std::vector<PlannedEvent> events;
  for (const auto& event : policy.events) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return std::nullopt;
    }
    auto known = probed_.find(key_of(event));
    if (known == probed_.end()) {
      PlannedEvent p = plan_event(root_, perf_, event, host_, builtin_quirks());
      for (const auto& step : p.fallbacks) ++fallbacks_[{p.event, step}];
      // Only a counted event is kept: one the kernel or the host could not count (tracefs
      // not mounted, a module not loaded yet) is probed again at the next reload.
      if (p.counters.empty()) {
        events.push_back(std::move(p));
        continue;
      }
      known = probed_.emplace(key_of(event), std::move(p)).first;
    }
    events.push_back(known->second);
  }
  PolicyPlan plan = make_policy_plan(policy, std::move(events), max_group_size);
  if (policy.sampling) plan.sampling = plan_sampling(*policy.sampling);
  return plan;
}

SamplingPlan Planner::plan_sampling(const SamplingConfig& sampling) {
  auto known = sampled_.find(key_of(sampling));
  if (known != sampled_.end()) return known->second;
  SamplingPlan p = kvmprof::plan_sampling(root_, perf_, sampling, host_, builtin_quirks());
  for (const auto& step : p.event.fallbacks) ++fallbacks_[{p.event.event, step}];
  if (!p.event.counters.empty()) sampled_.emplace(key_of(sampling), p);  // as for events: a failure is probed again
  return p;
}

}  // namespace kvmprof
