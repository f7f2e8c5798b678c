#include "exporters/landing_page.h"

namespace kvmprof {

std::string html_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string landing_page(const BuildInfo& build, const std::string& metrics_path) {
  const std::string path = html_escape(metrics_path);
  return "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>kvmprof-agent</title></head>\n<body>\n"
         "<h1>kvmprof-agent</h1>\n<p>Per-VM and per-vCPU cost of KVM guests. Version " + html_escape(build.version) +
         " (" + html_escape(build.revision) + ").</p>\n<ul><li><a href=\"" + path + "\">" + path +
         "</a>: Prometheus metrics</li>\n"
         "<li><a href=\"/debug/pprof/flamegraph?seconds=30\">/debug/pprof/flamegraph</a>: flame graph of every VM's "
         "last 30 s (domain=NAME for one VM, mode=guest|host|host_kernel|..., format=folded)</li>\n"
         "<li><a href=\"/debug/pprof/profile?seconds=30\">/debug/pprof/profile</a>: the same as pprof "
         "(go tool pprof, Parca, Pyroscope)</li></ul>\n</body></html>\n";
}

}  // namespace kvmprof
