#pragma once
// Inventory: the running VMs as libvirt reports them, each with its QEMU process, its threads
// (vCPU index or emulator role) and its plan. It is the one place that finds threads and
// announces thread added / thread gone / plan changed / VM gone to the ThreadConsumers.
//
// A VM whose process cannot be found, or whose vCPU threads are missing, is searched again
// with a backoff (1 s doubling to 60 s), never a full /proc scan every cycle. It counts as a
// discovery error only when it persists across a fresher libvirt answer: a domain that simply
// stopped is gone from that answer. A VM whose QEMU process has exited leaves at once, even
// while libvirt cannot be asked; an older answer that still lists it does not bring it back.
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/collect/backoff.h"
#include "agent/collect/thread_consumer.h"
#include "agent/discovery/hypervisor.h"
#include "agent/system/host_root.h"

namespace kvmprof {

// A count libvirt reports as it is (KVM's exit counters), kept as a total that never goes
// down: its growth from answer to answer, also across a restart of the QEMU process.
struct ReportedCount {
  uint64_t last = 0;   // the last value reported
  uint64_t total = 0;  // what is exported

  void update(uint64_t value) {
    total += value >= last ? value - last : value;  // smaller: the process restarted from zero
    last = value;
  }
};

struct VmEntry {
  DomainRecord record;  // libvirt's latest
  std::string policy;   // resolved when its name, title or metadata, or the config, change
  std::shared_ptr<const PolicyPlan> plan;
  std::optional<pid_t> pid;  // the QEMU process, once found
  std::map<pid_t, std::optional<unsigned>> threads;  // tid -> vCPU index; nullopt: emulator/IO
  std::map<unsigned, std::map<std::string, ReportedCount>> exits;  // vCPU -> reason -> count
  bool listed = false;       // its threads were listed at least once
  Backoff search{std::chrono::seconds(1), std::chrono::seconds(60)};  // for the process or missing vCPUs
  std::string problem;       // why it is not fully mapped ("" when it is)
  uint64_t problem_since = 0;  // the libvirt answer it was first seen with
  bool problem_reported = false;
  std::chrono::steady_clock::time_point next_read{};       // per its policy's interval
  std::chrono::steady_clock::time_point next_reconcile{};  // a full look at its threads

  size_t vcpu_threads() const;
  bool mapped() const { return pid && vcpu_threads() >= record.vcpus_current; }
};

class Inventory {
 public:
  using Clock = std::chrono::steady_clock;
  using Resolver = std::function<std::string(const DomainRecord&)>;  // a domain's policy name

  // Reads of /proc that fail for other reasons than an exit are counted in `read_errors`.
  Inventory(HostRoot root, ErrorCounts& read_errors) : root_(std::move(root)), read_errors_(read_errors) {}
  void add_consumer(ThreadConsumer& consumer) { consumers_.push_back(&consumer); }

  // A fresh libvirt answer: VMs come and go, a restarted one (new domain id) gets its new
  // process and threads but keeps its totals. True when the VMs, their vCPU counts or their
  // policies changed (the host limits must be checked again).
  bool sync(const std::vector<DomainRecord>& domains, const Resolver& resolve);
  // The config changed: every VM's policy again. True when one changed.
  bool resolve_policies(const Resolver& resolve);
  // Announces plan_changed when `plan` differs from the VM's.
  void set_plan(VmEntry& vm, std::shared_ptr<const PolicyPlan> plan);
  // Finds the process and lists its threads where needed: at first sight, while vCPU threads
  // are missing (with backoff), and on `reconcile`. False when the process has exited: the VM
  // was removed.
  bool refresh(VmEntry& vm, Clock::time_point now, bool reconcile);
  // A consumer saw these threads exit (ESRCH). When the process itself is gone the VM leaves
  // now, not at the next cycle: false then.
  bool threads_exited(VmEntry& vm, const std::vector<pid_t>& tids);

  std::map<std::string, VmEntry>& vms() { return vms_; }
  const std::map<std::string, VmEntry>& vms() const { return vms_; }
  const std::map<std::string, uint64_t>& discovery_errors() const { return discovery_errors_; }

 private:
  void restarted(VmEntry& vm);
  bool find_process(VmEntry& vm, Clock::time_point now);
  void list_threads_of(VmEntry& vm, const std::vector<pid_t>& tids);
  void reclassify_unnamed(VmEntry& vm);
  void add_thread(VmEntry& vm, pid_t tid, std::optional<unsigned> vcpu);
  void drop_thread(VmEntry& vm, pid_t tid);
  void drop_threads(VmEntry& vm);
  void remove(const std::string& uuid, const std::string& why);
  void process_exited(VmEntry& vm);
  void note_problem(VmEntry& vm, const std::string& reason, const std::string& detail);
  void clear_problem(VmEntry& vm);

  HostRoot root_;
  ErrorCounts& read_errors_;  // (source, errno)
  std::vector<ThreadConsumer*> consumers_;
  std::map<std::string, VmEntry> vms_;  // by UUID
  std::map<std::string, int> exited_;   // UUID -> domain id whose process exited before libvirt said so
  uint64_t answers_ = 0;                // libvirt answers synced
  std::map<std::string, uint64_t> discovery_errors_;
};

}  // namespace kvmprof
