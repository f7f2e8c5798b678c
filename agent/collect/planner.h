#pragma once
// Planner: decides a config's events for this host and opens each once through the open
// ladder, off the collection loop. For thousands of tracepoints that takes minutes (opening and
// closing a tracepoint event waits for RCU), so the loop keeps collecting and serving
// meanwhile, with the policies but without their events until the plan is done. Each (event,
// guest setting) is probed once per agent lifetime: a reload probes only events it has not
// seen. Stopping interrupts planning between two events.
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "agent/collect/collector.h"
#include "policy/agent_config.h"

namespace kvmprof {

class Planner {
 public:
  // Called on the planner's thread with each finished plan and the generation it was asked for.
  using Done = std::function<void(CollectorPlan plan, uint64_t generation)>;

  Planner(HostRoot root, PerfBackend& perf, HostModel host, Done done);
  ~Planner();  // stops between two events
  Planner(const Planner&) = delete;
  Planner& operator=(const Planner&) = delete;

  // Plans `config`; a request that has not started yet is replaced by this one.
  void request(AgentConfig config, uint64_t generation);

 private:
  void run();
  std::optional<CollectorPlan> plan(const AgentConfig& config);  // nullopt when stopped meanwhile
  std::optional<PolicyPlan> plan_policy(const Policy& policy, size_t max_group_size);
  SamplingPlan plan_sampling(const SamplingConfig& sampling);

  const HostRoot root_;
  PerfBackend& perf_;
  const HostModel host_;
  const Done done_;
  std::map<std::string, PlannedEvent> probed_;  // by spec and guest setting; the planner thread's own
  std::map<std::string, SamplingPlan> sampled_;  // by the whole sampling block
  ErrorCounts fallbacks_;                       // (event, ladder step) of every probe made
  std::mutex mu_;
  std::condition_variable wake_;
  std::optional<std::pair<AgentConfig, uint64_t>> pending_;
  bool stopping_ = false;
  std::thread thread_;
};

// The config's policies with no event planned yet: every VM gets its policy at once.
CollectorPlan unplanned(const AgentConfig& config);

}  // namespace kvmprof
