#pragma once
// LibvirtHypervisor: a read-only libvirt connection with lifecycle events and keepalive.
// libvirt's default event loop runs on its own thread (libvirt requires one for events and
// keepalive); callbacks are forwarded through HypervisorEvents to the agent's Asio loop.
#include <libvirt/libvirt.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "agent/discovery/hypervisor.h"

namespace kvmprof {

class LibvirtHypervisor final : public Hypervisor {
 public:
  LibvirtHypervisor(std::string uri, HypervisorEvents events);
  ~LibvirtHypervisor() override;
  LibvirtHypervisor(const LibvirtHypervisor&) = delete;
  LibvirtHypervisor& operator=(const LibvirtHypervisor&) = delete;

  Result<bool> connect() override;
  bool connected() const override { return conn_ != nullptr; }
  void disconnect() override;
  Result<std::vector<DomainRecord>> running_domains() override;
  void set_metadata_uris(std::vector<std::string> uris) override;

 private:
  struct Descriptive {
    std::string title;
    std::map<std::string, std::string> metadata;
  };
  void describe(virDomainPtr dom, DomainRecord& record);
  static int on_metadata(virConnectPtr, virDomainPtr, int type, const char* uri, void* self);

  static int on_lifecycle(virConnectPtr, virDomainPtr, int event, int detail, void* self);
  static void on_close(virConnectPtr, int reason, void* self);

  std::string uri_;
  HypervisorEvents events_;
  virConnectPtr conn_ = nullptr;
  int lifecycle_id_ = -1;
  int metadata_id_ = -1;
  std::vector<std::string> metadata_uris_;
  std::mutex cache_mu_;  // the cache is cleared from libvirt's event thread
  std::map<std::string, Descriptive> cache_;  // by "uuid/id": title and metadata change rarely
  std::atomic<bool> stop_{false};
  std::thread event_thread_;
};

}  // namespace kvmprof
