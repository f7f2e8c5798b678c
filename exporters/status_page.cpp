#include "exporters/status_page.h"

#include <ctime>

#include "exporters/markup.h"

namespace kvmprof {
namespace {

constexpr const char* kStyle =
    "body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin-bottom:1.5em}"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}th{background:#eee}"
    ".up{color:#070}.down{color:#b00}code{background:#f4f4f4}";

std::string utc(double unix_seconds) {
  if (unix_seconds <= 0) return "never";
  const auto t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string cell(const std::string& text) { return "<td>" + visible_text(text) + "</td>"; }

std::string header(std::initializer_list<const char*> names) {
  std::string out = "<tr>";
  for (const char* n : names) out += std::string("<th>") + n + "</th>";
  return out + "</tr>\n";
}

std::string about(const Snapshot& s, const StatusInfo& info) {
  const std::string metrics = xml_escape(info.metrics_path);
  return "<p>Per-VM and per-vCPU cost of KVM guests. Version " + xml_escape(info.build.version) + " (" +
         xml_escape(info.build.revision) + "); config " +
         (info.config_path.empty() ? std::string("built-in defaults") : "<code>" + visible_text(info.config_path) + "</code>") +
         "; last good (re)load " + utc(s.config_reload_success_timestamp) +
         (s.config_reload_ok ? "" : " <span class=\"down\">(the last reload failed: see the log)</span>") +
         "; libvirt " + (s.libvirt_up ? "<span class=\"up\">up</span>" : "<span class=\"down\">down</span>") +
         "; snapshot of " + utc(s.timestamp_seconds) + ".</p>\n<ul><li><a href=\"" + metrics + "\">" + metrics +
         "</a>: Prometheus metrics</li>\n<li><a href=\"/debug/pprof/flamegraph?seconds=30\">/debug/pprof/flamegraph</a>: "
         "flame graph of every VM's last 30 s (<code>domain=NAME</code> for one VM, <code>mode=guest</code>, "
         "<code>format=folded</code>)</li>\n<li><a href=\"/debug/pprof/profile?seconds=30\">/debug/pprof/profile</a>: "
         "the same as pprof (go tool pprof, Parca, Pyroscope)</li></ul>\n";
}

std::string vms(const Snapshot& s) {
  std::string out = "<h2>VMs (" + std::to_string(s.vms.size()) + ")</h2>\n<table>\n" +
                    header({"domain", "uuid", "policy", "vCPUs", "threads mapped", "profile"});
  for (const auto& vm : s.vms) {
    out += "<tr>" + cell(vm.name) + cell(vm.uuid) + cell(vm.policy) + cell(std::to_string(vm.vcpus.size())) +
           cell(vm.mapped ? "yes" : "no") + "<td><a href=\"/debug/pprof/flamegraph?seconds=30&amp;domain=" +
           xml_escape(url_escape(vm.name)) + "\">flame graph</a></td></tr>\n";
  }
  return out + "</table>\n";
}

std::string sources(const Snapshot& s) {
  std::string out = "<h2>Sources</h2>\n<table>\n" + header({"source", "state", "reason"});
  for (const auto& src : s.sources) {
    out += "<tr>" + cell(src.source) + (src.up ? "<td class=\"up\">up</td>" : "<td class=\"down\">down</td>") +
           cell(src.reason) + "</tr>\n";
  }
  return out + "</table>\n";
}

std::string events(const Snapshot& s) {
  std::string out = "<h2>Events: what each policy asked for, and what this host does</h2>\n<table>\n" +
                    header({"policy", "use", "event", "guest", "status", "counts", "reason", "attrs"});
  for (const auto& e : s.event_info) {
    out += "<tr>" + cell(e.policy) + cell(e.use) + cell(e.event) + cell(e.guest) + cell(e.status) + cell(e.semantics) +
           cell(e.reason) + "<td><code>" + visible_text(e.attrs) + "</code></td></tr>\n";
  }
  for (const auto& a : s.limit_actions) {
    out += "<tr>" + cell(a.policy) + cell("limit") + cell(a.event) + "<td></td>" + cell(a.action) +
           "<td></td><td>a host limit (limits: in the config) took this</td><td></td></tr>\n";
  }
  return out + "</table>\n";
}

}  // namespace

std::string status_page(const Snapshot& snapshot, const StatusInfo& info) {
  return "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\"><head><meta charset=\"utf-8\"/>"
         "<title>kvmprof-agent</title><style>" + std::string(kStyle) + "</style></head>\n<body>\n<h1>kvmprof-agent</h1>\n" +
         about(snapshot, info) + vms(snapshot) + sources(snapshot) + events(snapshot) + "</body></html>\n";
}

}  // namespace kvmprof
