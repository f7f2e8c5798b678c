#pragma once
// CpuAccounting: the procfs side of the thread lifecycle. It keeps every QEMU thread's
// schedstat and stat open, reads them once per cycle, and adds each thread's per-interval
// deltas to totals kept per VM: per vCPU index, and for the emulator threads together. A
// thread that exits (or is replaced by a new thread for the same vCPU) leaves its time in
// those totals, so no exported CPU counter ever decreases while the VM runs.
#include <sys/types.h>

#include <array>
#include <map>
#include <string>
#include <vector>

#include "agent/collect/backoff.h"
#include "agent/collect/thread_consumer.h"
#include "agent/collect/thread_cpu.h"
#include "agent/collect/thread_reader.h"
#include "exporters/snapshot.h"

namespace kvmprof {

class CpuAccounting final : public ThreadConsumer {
 public:
  CpuAccounting(HostRoot root, uint64_t ns_per_tick, ErrorCounts& read_errors)
      : root_(std::move(root)), ns_per_tick_(ns_per_tick), read_errors_(read_errors) {}

  void thread_added(const VmThread& thread, const std::shared_ptr<const PolicyPlan>& plan) override;
  void thread_gone(const VmThread& thread) override;
  void plan_changed(const std::string&, const std::shared_ptr<const PolicyPlan>&) override {}
  void vm_gone(const std::string& vm) override { vms_.erase(vm); }

  // Reads the VM's threads once each (opening again, with a backoff, those whose files could not
  // be opened). Returns the threads that have exited (ESRCH, ENOENT); any other failure is
  // counted and the thread kept: its time shows up in a later read.
  std::vector<pid_t> read(const std::string& vm, std::chrono::steady_clock::time_point now);
  // The VM's vCPUs that have a thread now, with their CPU modes and wait, and the emulator's modes.
  void fill(const std::string& vm, VmSample& out) const;
  // vCPU threads followed now, and how many of them have stat ticks that cannot be trusted.
  std::pair<size_t, size_t> tick_trust() const;
  size_t fd_count() const;

 private:
  struct Seen {  // a thread's values at its last read, ns
    uint64_t total = 0, wait = 0, unsplit = 0;
    std::array<uint64_t, 3> split{};
  };
  struct Thread {
    std::optional<unsigned> vcpu;
    ThreadReader reader;
    ThreadCpu cpu;
    Seen seen;
  };
  struct Totals {  // sums of deltas, ns: never decrease
    uint64_t total = 0, wait = 0, unsplit = 0;
    std::array<uint64_t, 3> split{};
    bool trusted = true;  // every thread that ran this vCPU had trustworthy ticks
  };
  struct Unopened {  // a thread whose files could not be opened (EMFILE, ...): tried again
    VmThread thread;
    Backoff retry{std::chrono::seconds(1), std::chrono::minutes(5)};
  };
  struct Vm {
    std::map<pid_t, Thread> threads;
    std::map<pid_t, Unopened> unopened;
    std::vector<pid_t> exited;  // found gone when opening; reported by the next read()
    std::map<unsigned, Totals> vcpus;
    Totals emulator;
  };

  void open(Vm& vm, const VmThread& thread, std::chrono::steady_clock::time_point now);
  void account(Vm& vm, Thread& thread);

  HostRoot root_;
  uint64_t ns_per_tick_;
  ErrorCounts& read_errors_;  // (source, errno)
  std::map<std::string, Vm> vms_;
};

}  // namespace kvmprof
