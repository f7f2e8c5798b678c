#pragma once
// CounterGroups: the perf side of the thread lifecycle. Every vCPU thread gets its plan's
// counter groups, read with one read() each per cycle. Counts are built from per-interval
// deltas, as `perf stat -I` does: each delta is scaled for multiplexing on its own and added
// to totals kept per VM and vCPU index, so no exported count decreases while its series lives
// (a reload, a thread that goes away, a group reopened, a multiplexing ratio that changes).
//
// Several counters of one (event, mode) on a thread, as on hybrid CPUs where a core event is
// one counter per core type, are summed into one value: their raw deltas are added and scaled
// by enabled / (sum of running). A per-thread counter of one core type is enabled while the
// thread runs anywhere but runs only while it is on that core type (kernel/events/core.c
// event_filter_match() leaves it inactive elsewhere), so the core types' running times
// together cover the thread's time, and scaling each counter alone would count the thread's
// time on the other core type as multiplexing.
//
// Groups the kernel refuses (EACCES without ptrace rights, EMFILE, ...) are opened again with
// a backoff of 1 s doubling to 5 min; health() tells what really opened, for source_up.
#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/collect/backoff.h"
#include "agent/collect/cpu_accounting.h"
#include "agent/system/perf_group.h"

namespace kvmprof {

// What really happened to one event's counters on the vCPU threads followed now.
struct EventHealth {
  size_t open = 0;         // threads where its counters are open (and their last read, if any, worked)
  size_t refused = 0;      // threads where the kernel refused to open them
  size_t read_failed = 0;  // threads where they are open but the last read failed
  int last_errno = 0;      // of the last refusal or failed read
  bool counted = false;    // some vCPU's total is above zero (a tracepoint that fires)
};

class CounterGroups final : public ThreadConsumer {
 public:
  using Clock = std::chrono::steady_clock;

  CounterGroups(PerfBackend& perf, ErrorCounts& open_errors, ErrorCounts& read_errors)
      : perf_(perf), open_errors_(open_errors), read_errors_(read_errors) {}

  void thread_added(const VmThread& thread, const std::shared_ptr<const PolicyPlan>& plan) override;
  void thread_gone(const VmThread& thread) override;
  void plan_changed(const std::string& vm, const std::shared_ptr<const PolicyPlan>& plan) override;
  void vm_gone(const std::string& vm) override { vms_.erase(vm); }

  // One read() per open group of the VM's vCPU threads; refused groups whose backoff is over
  // are opened again first.
  void read(const std::string& vm, Clock::time_point now);
  // The values of the events in the VM's plan that have run and are in `live`: per vCPU that
  // has a thread now, or, with aggregation per_vm, summed over every vCPU the VM has had.
  void fill(const std::string& vm, VmSample& out, const std::set<std::string>& live) const;
  std::map<std::string, EventHealth> health() const;
  size_t fd_count() const;

 private:
  using Key = std::pair<std::string, std::string>;  // (event, mode)
  struct Totals {  // sums of scaled deltas: never decrease
    double value = 0;
    uint64_t enabled_ns = 0, running_ns = 0;
  };
  struct Pending {  // one read of one thread, per (event, mode)
    uint64_t raw = 0, enabled = 0, running = 0;
  };
  struct Group {
    std::vector<size_t> slots;  // the plan's slots in this group
    std::optional<PerfGroup> counters;  // empty while refused
    Backoff retry{std::chrono::seconds(1), std::chrono::minutes(5)};
    int err = 0;           // errno of the last refusal
    int read_errno = 0;    // of the last read, when it failed
    std::vector<uint64_t> raw;  // by plan slot: raw count at the last read
    uint64_t enabled = 0, running = 0;  // ns, at the last read
  };
  struct Thread {
    unsigned vcpu = 0;
    pid_t tid = 0;
    std::vector<Group> groups;
  };
  struct Vm {
    std::shared_ptr<const PolicyPlan> plan;
    std::map<pid_t, Thread> threads;
    std::map<unsigned, std::map<Key, Totals>> vcpus;  // by vCPU index
  };

  static int rank(const Group& g);
  static void add_health(EventHealth& h, const Group& g);
  std::vector<Group> groups_of(const PolicyPlan& plan) const;
  void read_thread(Vm& vm, Thread& thread, std::optional<Clock::time_point> reopen_at);
  void open_groups(const PolicyPlan& plan, Thread& thread);
  void open_group(const PolicyPlan& plan, Thread& thread, Group& group, Clock::time_point now);
  void take(const PolicyPlan& plan, Group& group, const GroupReading& reading, std::map<Key, Pending>& pending);

  PerfBackend& perf_;
  ErrorCounts& open_errors_;  // (event, errno)
  ErrorCounts& read_errors_;  // (source, errno)
  std::map<std::string, Vm> vms_;
};

// A delta of one (event, mode): raw counts scaled by enabled/running, 0 when it did not run.
double scaled_delta(uint64_t raw, uint64_t enabled_ns, uint64_t running_ns);

}  // namespace kvmprof
