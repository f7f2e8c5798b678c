#include "agent/discovery/libvirt_hypervisor.h"

#include <libvirt/virterror.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <memory>

namespace kvmprof {
namespace {

Error libvirt_error(const std::string& what) {
  const virError* err = virGetLastError();
  return Error{0, what + ": " + (err && err->message ? err->message : "unknown libvirt error")};
}

void quiet_errors(void*, virErrorPtr) {}  // we report errors ourselves, once, with context

const char* lifecycle_name(int event) {
  switch (event) {
    case VIR_DOMAIN_EVENT_STARTED: return "started";
    case VIR_DOMAIN_EVENT_STOPPED: return "stopped";
    case VIR_DOMAIN_EVENT_SUSPENDED: return "suspended";
    case VIR_DOMAIN_EVENT_RESUMED: return "resumed";
    case VIR_DOMAIN_EVENT_CRASHED: return "crashed";
    default: return "changed";
  }
}

DomainRecord to_record(const virDomainStatsRecord& rec) {
  DomainRecord out;
  out.vcpu_stats = false;
  out.name = virDomainGetName(rec.dom);
  out.id = static_cast<int>(virDomainGetID(rec.dom));
  char uuid[VIR_UUID_STRING_BUFLEN] = {};
  if (virDomainGetUUIDString(rec.dom, uuid) == 0) out.uuid = uuid;
  for (int i = 0; i < rec.nparams; ++i) {
    const virTypedParameter& p = rec.params[i];
    unsigned vcpu = 0;
    std::string reason;
    if (std::string(p.field) == "vcpu.current" && p.type == VIR_TYPED_PARAM_UINT) {
      out.vcpus_current = p.value.ui;
      out.vcpu_stats = true;
    } else if (p.type == VIR_TYPED_PARAM_ULLONG && parse_exit_param(p.field, vcpu, reason)) {
      out.exits[vcpu][reason] = p.value.ul;
    }
  }
  return out;
}

}  // namespace

bool parse_exit_param(const std::string& name, unsigned& vcpu, std::string& reason) {
  constexpr std::string_view kPrefix = "vcpu.", kSuffix = "exits.sum";
  std::string_view s = name;
  if (!s.starts_with(kPrefix) || !s.ends_with(kSuffix)) return false;
  s.remove_prefix(kPrefix.size());
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), vcpu);
  if (ec != std::errc() || p == s.data() || *p != '.') return false;
  std::string_view stat(p + 1, s.data() + s.size() - (p + 1));  // "halt_exits.sum"
  stat.remove_suffix(kSuffix.size());                            // "halt_"
  if (stat.empty()) {
    reason = "all";
    return true;
  }
  if (!stat.ends_with('_') || stat.size() < 2) return false;
  reason = std::string(stat.substr(0, stat.size() - 1));
  return true;
}

LibvirtHypervisor::LibvirtHypervisor(std::string uri, HypervisorEvents events)
    : uri_(std::move(uri)), events_(std::move(events)) {
  virSetErrorFunc(nullptr, quiet_errors);
  virEventRegisterDefaultImpl();
  event_thread_ = std::thread([this] {
    while (!stop_) virEventRunDefaultImpl();
  });
}

LibvirtHypervisor::~LibvirtHypervisor() {
  disconnect();
  stop_ = true;
  // A zero timeout wakes the event loop so the thread sees stop_.
  virEventAddTimeout(0, [](int t, void*) { virEventRemoveTimeout(t); }, nullptr, nullptr);
  event_thread_.join();
}

Result<bool> LibvirtHypervisor::connect() {
  if (conn_) return true;
  conn_ = virConnectOpenReadOnly(uri_.c_str());
  if (!conn_) return libvirt_error("connect to " + uri_);
  virConnectSetKeepAlive(conn_, 5, 3);  // a dead libvirtd is noticed within ~20 s
  virConnectRegisterCloseCallback(conn_, on_close, this, nullptr);
  lifecycle_id_ = virConnectDomainEventRegisterAny(
      conn_, nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), this,
      nullptr);
  metadata_id_ = virConnectDomainEventRegisterAny(
      conn_, nullptr, VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, VIR_DOMAIN_EVENT_CALLBACK(on_metadata), this, nullptr);
  return true;
}

void LibvirtHypervisor::disconnect() {
  if (!conn_) return;
  if (lifecycle_id_ >= 0) virConnectDomainEventDeregisterAny(conn_, lifecycle_id_);
  if (metadata_id_ >= 0) virConnectDomainEventDeregisterAny(conn_, metadata_id_);
  metadata_id_ = -1;
  virConnectUnregisterCloseCallback(conn_, on_close);
  virConnectClose(conn_);
  conn_ = nullptr;
  lifecycle_id_ = -1;
}

Result<std::vector<DomainRecord>> LibvirtHypervisor::running_domains() {
  if (!conn_) return Error{0, "not connected to " + uri_};
  virDomainStatsRecordPtr* records = nullptr;
  int n = virConnectGetAllDomainStats(conn_, VIR_DOMAIN_STATS_VCPU, &records,
                                      VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE);
  if (n < 0) return libvirt_error("list domains on " + uri_);
  std::unique_ptr<virDomainStatsRecordPtr, void (*)(virDomainStatsRecordPtr*)> guard(
      records, virDomainStatsRecordListFree);
  std::vector<DomainRecord> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(to_record(*records[i]));
    describe(records[i]->dom, out.back());
  }
  std::lock_guard lock(cache_mu_);
  std::erase_if(cache_, [&](const auto& entry) {  // forget domains that stopped
    return std::none_of(out.begin(), out.end(), [&](const DomainRecord& r) {
      return entry.first == r.uuid + "/" + std::to_string(r.id);
    });
  });
  return out;
}

void LibvirtHypervisor::set_metadata_uris(std::vector<std::string> uris) {
  std::lock_guard lock(cache_mu_);
  metadata_uris_ = std::move(uris);
  cache_.clear();
}

// Title and metadata cost one call each; they are cached per domain start and refreshed when
// libvirt reports a metadata change.
void LibvirtHypervisor::describe(virDomainPtr dom, DomainRecord& record) {
  const std::string key = record.uuid + "/" + std::to_string(record.id);
  std::vector<std::string> uris;
  {
    std::lock_guard lock(cache_mu_);
    if (auto cached = cache_.find(key); cached != cache_.end()) {
      record.title = cached->second.title;
      record.metadata = cached->second.metadata;
      return;
    }
    uris = metadata_uris_;
  }
  auto fetch = [&](int type, const char* uri) {  // an RPC: never under cache_mu_
    char* text = virDomainGetMetadata(dom, type, uri, VIR_DOMAIN_AFFECT_LIVE);
    std::string out = text ? text : "";
    free(text);  // NOLINT: allocated by libvirt
    return out;
  };
  record.title = fetch(VIR_DOMAIN_METADATA_TITLE, nullptr);
  for (const auto& uri : uris) record.metadata[uri] = fetch(VIR_DOMAIN_METADATA_ELEMENT, uri.c_str());
  std::lock_guard lock(cache_mu_);
  cache_[key] = Descriptive{record.title, record.metadata};
}

int LibvirtHypervisor::on_metadata(virConnectPtr, virDomainPtr dom, int, const char*, void* self) {
  auto* h = static_cast<LibvirtHypervisor*>(self);
  {
    std::lock_guard lock(h->cache_mu_);
    h->cache_.clear();
  }
  if (h->events_.domain_changed) h->events_.domain_changed(std::string(virDomainGetName(dom)) + " metadata changed");
  return 0;
}

int LibvirtHypervisor::on_lifecycle(virConnectPtr, virDomainPtr dom, int event, int, void* self) {
  auto* h = static_cast<LibvirtHypervisor*>(self);
  if (h->events_.domain_changed) {
    h->events_.domain_changed(std::string(virDomainGetName(dom)) + " " + lifecycle_name(event));
  }
  return 0;
}

void LibvirtHypervisor::on_close(virConnectPtr, int reason, void* self) {
  auto* h = static_cast<LibvirtHypervisor*>(self);
  const char* why = reason == VIR_CONNECT_CLOSE_REASON_EOF ? "libvirtd closed the connection"
                    : reason == VIR_CONNECT_CLOSE_REASON_KEEPALIVE ? "keepalive timed out"
                                                                    : "connection error";
  if (h->events_.connection_lost) h->events_.connection_lost(why);
}

}  // namespace kvmprof
