#pragma once
// Hypervisor: the narrow interface over libvirt that discovery needs.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "agent/system/result.h"

namespace kvmprof {

struct DomainRecord {
  std::string name;
  std::string uuid;
  int id = -1;                 // libvirt domain id; a new one each time the domain starts
  unsigned vcpus_current = 0;  // online vCPUs, from libvirt's "vcpu.current"
  std::string title;           // libvirt <title>, for policy selectors
  std::map<std::string, std::string> metadata;  // namespace URI -> <metadata> element XML
  // vCPU index -> exit reason -> count, from KVM's binary stats as libvirt reports them
  // ("vcpu.N.exits.sum" is reason "all", "vcpu.N.halt_exits.sum" is "halt", ...); QEMU's own,
  // so they restart with the process; absent when libvirt (NOWAIT) skipped a busy domain's.
  std::map<unsigned, std::map<std::string, uint64_t>> exits;
};

// libvirt's events, delivered on libvirt's own event thread: something changed (a domain
// started or stopped, its metadata changed, the connection closed), so ask again.
struct HypervisorEvents {
  std::function<void(const std::string& what)> changed;
};

// Used from one thread (the Discovery thread); only the events come from another.
class Hypervisor {
 public:
  virtual ~Hypervisor() = default;
  virtual void set_events(HypervisorEvents events) = 0;  // before the first connect()
  virtual Result<bool> connect() = 0;
  // False also once libvirt has closed the connection (keepalive, libvirtd gone).
  virtual bool connected() const = 0;
  virtual void disconnect() = 0;
  // Running (and paused) domains with their vCPU statistics, in one round trip (plus, for a
  // domain first seen or changed, its title and the metadata elements of `metadata_uris`).
  virtual Result<std::vector<DomainRecord>> running_domains() = 0;
  virtual void set_metadata_uris(std::vector<std::string> uris) = 0;
};

// Parses a bulk-stats parameter name such as "vcpu.3.halt_exits.sum" into (3, "halt"),
// "vcpu.0.exits.sum" into (0, "all"). False for every other name.
bool parse_exit_param(const std::string& name, unsigned& vcpu, std::string& reason);

}  // namespace kvmprof
