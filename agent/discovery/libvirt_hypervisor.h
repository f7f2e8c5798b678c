#pragma once
// LibvirtHypervisor: a read-only libvirt connection with lifecycle and metadata events and
// keepalive. libvirt's default event loop runs on its own thread (libvirt requires one for
// events and keepalive); its callbacks only mark what changed and hand over through
// HypervisorEvents. Every connection has a generation: a callback of an older connection can
// neither tear down a newer one nor leave a stale answer in the title/metadata cache.
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
  explicit LibvirtHypervisor(std::string uri);
  ~LibvirtHypervisor() override;
  LibvirtHypervisor(const LibvirtHypervisor&) = delete;
  LibvirtHypervisor& operator=(const LibvirtHypervisor&) = delete;

  void set_events(HypervisorEvents events) override { events_ = std::move(events); }
  Result<bool> connect() override;
  bool connected() const override { return conn_ != nullptr && closed_ != generation_; }
  void disconnect() override;
  Result<std::vector<DomainRecord>> running_domains() override;
  void set_metadata_uris(std::vector<std::string> uris) override;

 private:
  struct Descriptive {
    std::string title;
    std::map<std::string, std::string> metadata;
    bool valid = false;  // a complete answer no change has overtaken; else only the last good answer
  };
  struct Tag;  // a callback's connection: the object and the generation it was registered for
  void describe(virDomainPtr dom, DomainRecord& record);
  bool fetch(virDomainPtr dom, int type, const std::string& uri, std::string& out);
  static int on_metadata(virConnectPtr, virDomainPtr, int type, const char* uri, void* tag);
  static int on_lifecycle(virConnectPtr, virDomainPtr, int event, int detail, void* tag);
  static void on_close(virConnectPtr, int reason, void* tag);

  std::string uri_;
  HypervisorEvents events_;
  virConnectPtr conn_ = nullptr;
  std::atomic<uint64_t> generation_{0};  // of the current connection
  std::atomic<uint64_t> closed_{0};      // the generation libvirt closed
  int lifecycle_id_ = -1;
  int metadata_id_ = -1;
  std::vector<std::string> metadata_uris_;
  std::mutex cache_mu_;  // libvirt's event thread invalidates entries
  std::map<std::string, Descriptive> cache_;  // by "uuid/id": title and metadata change rarely
  std::map<std::string, uint64_t> changes_;   // by UUID: metadata events seen, so a fetch that raced one is not kept
  std::atomic<bool> stop_{false};
  std::thread event_thread_;
};

}  // namespace kvmprof
