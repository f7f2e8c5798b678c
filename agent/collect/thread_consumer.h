#pragma once
// The thread lifecycle: the Inventory finds each VM's QEMU threads and announces them to
// ThreadConsumers (CPU accounting, counter groups; the sampler joins the same way). Every
// announcement comes from the collection loop, in order: a thread is added before it can go,
// all of a VM's threads go before the VM does.
#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "agent/collect/event_plan.h"

namespace kvmprof {

// A QEMU thread of a running VM.
struct VmThread {
  std::string vm;  // libvirt UUID
  pid_t pid = 0;   // the QEMU process
  pid_t tid = 0;
  std::optional<unsigned> vcpu;  // the vCPU index; nullopt for emulator and I/O threads
};

class ThreadConsumer {
 public:
  virtual ~ThreadConsumer() = default;
  // A thread was found, or changed role (a thread named just after it started turned out to
  // be a vCPU): a consumer that already follows `thread.tid` keeps what it has for it.
  virtual void thread_added(const VmThread& thread, const std::shared_ptr<const PolicyPlan>& plan) = 0;
  // The thread exited or its VM stopped: take what is left (a last read, drained buffers),
  // then close its fds. Its totals stay with the VM.
  virtual void thread_gone(const VmThread& thread) = 0;
  // The VM's plan changed (reload, host limits): reopen what differs, keep what continues.
  virtual void plan_changed(const std::string& vm, const std::shared_ptr<const PolicyPlan>& plan) = 0;
  // The VM stopped; all its threads were announced gone first.
  virtual void vm_gone(const std::string& vm) = 0;
};

}  // namespace kvmprof
