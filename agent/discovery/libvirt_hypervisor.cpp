#include "agent/discovery/libvirt_hypervisor.h"

#include <libvirt/virterror.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <memory>
#include <optional>

#include "agent/system/log.h"

namespace kvmprof {
namespace {

Error libvirt_error(const std::string& what) {
  const virError* err = virGetLastError();
  return Error{0, what + ": " + (err && err->message ? err->message : "unknown libvirt error")};
}

// What to do about a failed connect, from libvirt's error: the usual cause is that libvirtd
// is not running, but a non-root agent is also refused when libvirtd cannot ask polkit
// (libvirtd's auth_unix_ro = "polkit" goes through the system D-Bus, reached once at its start).
std::string connect_hint() {
  const virError* err = virGetLastError();
  const std::string message = err && err->message ? err->message : "";
  if (err && (err->domain == VIR_FROM_DBUS || message.find("system bus") != std::string::npos)) {
    return " (libvirtd runs, but it authorizes non-root clients through polkit over the system D-Bus, which it "
           "could not reach when it started: start dbus and polkitd, then restart libvirtd; or set "
           "auth_unix_ro = \"none\" in /etc/libvirt/libvirtd.conf (virtqemud.conf with the modular daemons); or run "
           "the agent as root)";
  }
  if (err && (err->domain == VIR_FROM_POLKIT || err->code == VIR_ERR_AUTH_FAILED)) {
    return " (polkit denied this user org.libvirt.unix.monitor, libvirt's read-only access: allow it in a polkit "
           "rule, or set auth_unix_ro = \"none\" in libvirtd.conf)";
  }
  if (message.find("Permission denied") != std::string::npos) {
    return " (this user may not open libvirt's read-only socket: see unix_sock_ro_perms and unix_sock_group in "
           "libvirtd.conf, and add the group to the agent's user)";
  }
  return " (is libvirtd running? systemctl start libvirtd)";
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

// A callback's registration: which object, for which connection. libvirt frees it (free_tag)
// when the callback is deregistered.
struct LibvirtHypervisor::Tag {
  LibvirtHypervisor* self;
  uint64_t generation;

  static void free_tag(void* tag) { delete static_cast<Tag*>(tag); }
  // The object, or null when the callback belongs to an older connection.
  static LibvirtHypervisor* current(void* tag) {
    auto* t = static_cast<Tag*>(tag);
    return t->generation == t->self->generation_ ? t->self : nullptr;
  }
};

LibvirtHypervisor::LibvirtHypervisor(std::string uri) : uri_(std::move(uri)) {
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
  if (connected()) return true;
  disconnect();
  conn_ = virConnectOpenReadOnly(uri_.c_str());
  if (!conn_) {
    Error e = libvirt_error("connect to " + uri_);
    e.context += connect_hint();
    return e;
  }
  const uint64_t generation = ++generation_;
  {
    std::lock_guard lock(cache_mu_);
    for (auto& [key, entry] : cache_) entry.valid = false;  // events were missed while not connected
  }
  virConnectSetKeepAlive(conn_, 5, 3);  // a dead libvirtd is noticed within ~20 s
  virConnectRegisterCloseCallback(conn_, on_close, new Tag{this, generation}, Tag::free_tag);
  lifecycle_id_ = virConnectDomainEventRegisterAny(conn_, nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                   VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle),
                                                   new Tag{this, generation}, Tag::free_tag);
  metadata_id_ = virConnectDomainEventRegisterAny(conn_, nullptr, VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
                                                  VIR_DOMAIN_EVENT_CALLBACK(on_metadata),
                                                  new Tag{this, generation}, Tag::free_tag);
  return true;
}

void LibvirtHypervisor::disconnect() {
  if (!conn_) return;
  ++generation_;  // from now on, callbacks of this connection are stale
  if (lifecycle_id_ >= 0) virConnectDomainEventDeregisterAny(conn_, lifecycle_id_);
  if (metadata_id_ >= 0) virConnectDomainEventDeregisterAny(conn_, metadata_id_);
  virConnectUnregisterCloseCallback(conn_, on_close);
  virConnectClose(conn_);
  conn_ = nullptr;
  lifecycle_id_ = metadata_id_ = -1;
}

Result<std::vector<DomainRecord>> LibvirtHypervisor::running_domains() {
  if (!connected()) return Error{0, "not connected to " + uri_};
  virDomainStatsRecordPtr* records = nullptr;
  // NOWAIT: a domain whose QEMU monitor is busy is reported without waiting for it (its vCPU
  // stats may be missing; the collector keeps the last ones).
  int n = virConnectGetAllDomainStats(conn_, VIR_DOMAIN_STATS_VCPU, &records,
                                      VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE | VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT);
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
  std::erase_if(changes_, [&](const auto& entry) {
    return std::none_of(out.begin(), out.end(), [&](const DomainRecord& r) { return entry.first == r.uuid; });
  });
  return out;
}

void LibvirtHypervisor::set_metadata_uris(std::vector<std::string> uris) {
  std::lock_guard lock(cache_mu_);
  if (uris == metadata_uris_) return;  // a reload that keeps them: one RPC per domain saved
  metadata_uris_ = std::move(uris);
  for (auto& [key, entry] : cache_) entry.valid = false;
}

// One title or metadata element; true when libvirt answered (an absent one is an answer: "").
bool LibvirtHypervisor::fetch(virDomainPtr dom, int type, const std::string& uri, std::string& out) {
  char* text = virDomainGetMetadata(dom, type, uri.empty() ? nullptr : uri.c_str(), VIR_DOMAIN_AFFECT_LIVE);
  if (!text) {
    const virError* err = virGetLastError();
    out.clear();
    return err && err->code == VIR_ERR_NO_DOMAIN_METADATA;
  }
  out = text;
  free(text);  // NOLINT: allocated by libvirt
  return true;
}

// Title and metadata cost one call each: cached per domain start, asked again for a domain
// when libvirt reports a metadata change of it. A failed answer is never cached, nor taken for
// an empty one: the last good answer stands and the next poll asks again.
void LibvirtHypervisor::describe(virDomainPtr dom, DomainRecord& record) {
  const std::string key = record.uuid + "/" + std::to_string(record.id);
  std::vector<std::string> uris;
  Descriptive last;
  uint64_t changes = 0;
  {
    std::lock_guard lock(cache_mu_);
    if (auto cached = cache_.find(key); cached != cache_.end()) last = cached->second;
    if (last.valid) {
      record.title = last.title;
      record.metadata = last.metadata;
      return;
    }
    uris = metadata_uris_;
    changes = changes_[record.uuid];
  }
  Descriptive fresh;  // RPCs: never under cache_mu_
  fresh.valid = fetch(dom, VIR_DOMAIN_METADATA_TITLE, "", fresh.title);
  if (!fresh.valid) fresh.title = last.title;
  for (const auto& uri : uris) {
    std::string element;
    if (fetch(dom, VIR_DOMAIN_METADATA_ELEMENT, uri, element)) {
      fresh.metadata[uri] = element;
    } else {
      fresh.valid = false;
      if (last.metadata.contains(uri)) fresh.metadata[uri] = last.metadata.at(uri);
    }
  }
  record.title = fresh.title;
  record.metadata = fresh.metadata;
  std::lock_guard lock(cache_mu_);
  fresh.valid = fresh.valid && changes_[record.uuid] == changes;  // no metadata change raced the fetch
  cache_[key] = std::move(fresh);
}

int LibvirtHypervisor::on_metadata(virConnectPtr, virDomainPtr dom, int, const char*, void* tag) {
  LibvirtHypervisor* h = Tag::current(tag);
  if (!h) return 0;
  char uuid[VIR_UUID_STRING_BUFLEN] = {};
  if (virDomainGetUUIDString(dom, uuid) != 0) return 0;
  {
    std::lock_guard lock(h->cache_mu_);
    ++h->changes_[uuid];
    for (auto& [key, entry] : h->cache_) {  // keep the last answer for when asking again fails
      if (key.starts_with(std::string(uuid) + "/")) entry.valid = false;
    }
  }
  if (h->events_.changed) h->events_.changed(std::string(virDomainGetName(dom)) + " metadata changed");
  return 0;
}

int LibvirtHypervisor::on_lifecycle(virConnectPtr, virDomainPtr dom, int event, int, void* tag) {
  LibvirtHypervisor* h = Tag::current(tag);
  if (h && h->events_.changed) h->events_.changed(std::string(virDomainGetName(dom)) + " " + lifecycle_name(event));
  return 0;
}

void LibvirtHypervisor::on_close(virConnectPtr, int reason, void* tag) {
  LibvirtHypervisor* h = Tag::current(tag);
  if (!h) return;  // an older connection: it must not tear down the current one
  h->closed_ = static_cast<Tag*>(tag)->generation;
  const char* why = reason == VIR_CONNECT_CLOSE_REASON_EOF ? "libvirtd closed the connection"
                    : reason == VIR_CONNECT_CLOSE_REASON_KEEPALIVE ? "keepalive timed out"
                                                                    : "connection error";
  log_warning(std::string("libvirt connection closed: ") + why);
  if (h->events_.changed) h->events_.changed(why);
}

}  // namespace kvmprof
