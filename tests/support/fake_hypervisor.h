#pragma once
// A fake libvirt for daemon tests: scripted domains, libvirtd down and up again, and calls
// that hang until released (a libvirtd stopped with SIGSTOP, a stuck QEMU monitor).
#include <condition_variable>
#include <mutex>
#include <vector>

#include "agent/discovery/hypervisor.h"

namespace kvmprof::testing {

class FakeHypervisor final : public Hypervisor {
 public:
  void set_events(HypervisorEvents events) override {
    std::lock_guard lock(mu_);
    events_ = std::move(events);
  }
  Result<bool> connect() override {
    std::unique_lock lock(mu_);
    wait_while_held(lock);
    if (!up_) return Error{ECONNREFUSED, "connect to fake:///system"};
    connected_ = true;
    return true;
  }
  bool connected() const override {
    std::lock_guard lock(mu_);
    return connected_ && up_;
  }
  void disconnect() override {
    std::lock_guard lock(mu_);
    connected_ = false;
  }
  Result<std::vector<DomainRecord>> running_domains() override {
    std::unique_lock lock(mu_);
    ++calls_;
    wait_while_held(lock);
    if (!up_ || !connected_) return Error{0, "fake libvirtd closed the connection"};
    return domains_;
  }
  void set_metadata_uris(std::vector<std::string>) override {}

  // What the test changes; libvirt's event is raised as the real one would.
  void set_domains(std::vector<DomainRecord> domains) {
    changed([&] { domains_ = std::move(domains); });
  }
  void set_up(bool up) {
    changed([&] { up_ = up; });
  }
  void hold(bool held) {
    std::lock_guard lock(mu_);
    held_ = held;
    released_.notify_all();
  }
  size_t calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  void wait_while_held(std::unique_lock<std::mutex>& lock) {
    released_.wait(lock, [&] { return !held_; });
  }
  template <class F>
  void changed(F&& f) {
    HypervisorEvents events;
    {
      std::lock_guard lock(mu_);
      f();
      events = events_;
    }
    if (events.changed) events.changed("test");
  }

  mutable std::mutex mu_;
  std::condition_variable released_;
  HypervisorEvents events_;
  std::vector<DomainRecord> domains_;
  bool up_ = true, connected_ = false, held_ = false;
  size_t calls_ = 0;
};

}  // namespace kvmprof::testing
