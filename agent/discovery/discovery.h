#pragma once
// Discovery: the libvirt thread. It connects (again and again with a backoff of 1 s doubling
// to the configured maximum), asks libvirt for the running domains every interval and at once
// when libvirt reports a lifecycle or metadata event, and hands every answer to the
// collection loop as an immutable list. libvirt is never asked on the measuring path: a hung
// libvirtd or a stuck QEMU monitor blocks only this thread, and the loop, told when each call
// starts, says libvirt is down once a call takes longer than its timeout.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/discovery/hypervisor.h"

namespace kvmprof {

class Discovery {
 public:
  using Clock = std::chrono::steady_clock;
  using Domains = std::shared_ptr<const std::vector<DomainRecord>>;

  struct Callbacks {
    std::function<void()> call_started;  // a libvirt call (connect, list) begins
    // The call ended: the running domains, or null with why not.
    std::function<void(Domains domains, const std::string& error)> answered;
  };

  // `hypervisor` is used from this thread only (its event callbacks come on libvirt's own).
  Discovery(Hypervisor& hypervisor, std::string uri, Callbacks callbacks);
  ~Discovery();  // stop(kStopWait) if not done yet
  Discovery(const Discovery&) = delete;
  Discovery& operator=(const Discovery&) = delete;

  void start(std::chrono::milliseconds interval, std::chrono::milliseconds max_backoff,
             std::vector<std::string> metadata_uris);
  // Thread-safe settings and requests; they take effect at the thread's next step.
  void set_interval(std::chrono::milliseconds interval, std::chrono::milliseconds max_backoff);
  void set_metadata_uris(std::vector<std::string> uris);
  // Ends the thread. False when it stayed stuck in a libvirt call for `wait`: it is then left
  // behind (and with it the Hypervisor, which must not be destroyed).
  bool stop(std::chrono::milliseconds wait);

  static constexpr std::chrono::milliseconds kStopWait{500};

  struct Shared;  // all the thread uses; it co-owns it, so an abandoned thread never touches this object

 private:
  std::shared_ptr<Shared> shared_;
  std::thread thread_;
};

}  // namespace kvmprof
