#include "agent/collect/event_attrs.h"

#include <charconv>

namespace kvmprof {
namespace {

constexpr const char* kTracingDirs[] = {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"};

// perf_event_attr for counting on one thread: no sampling, no exclude bits (mode "all").
perf_event_attr counting_attr(uint32_t type, uint64_t config) {
  perf_event_attr attr{};
  attr.size = sizeof(attr);
  attr.type = type;
  attr.config = config;
  return attr;
}

CountedEvent tracepoint(const HostRoot& root, const std::string& name, const TracepointEvent& tp) {
  CountedEvent out{{name, {}}, true, ""};
  bool tracefs_found = false;
  for (const char* dir : kTracingDirs) {
    if (!root.list_dir(std::string(dir) + "/events").ok()) continue;
    tracefs_found = true;
    auto id_text = root.read_file(std::string(dir) + "/events/" + tp.subsystem + "/" + tp.name + "/id");
    if (!id_text.ok()) continue;
    uint64_t id = 0;
    auto [p, ec] = std::from_chars(id_text->data(), id_text->data() + id_text->size(), id);
    if (ec != std::errc()) continue;
    out.attr.attr = counting_attr(PERF_TYPE_TRACEPOINT, id);
    return out;
  }
  out.unavailable = tracefs_found
                        ? "no tracepoint " + name + " on this kernel (is the module loaded?)"
                        : "tracefs is not mounted; run: mount -t tracefs nodev /sys/kernel/tracing";
  return out;
}

}  // namespace

std::vector<CountedEvent> resolve_events(const HostRoot& root, const std::vector<EventSpec>& specs) {
  std::vector<CountedEvent> out;
  for (const auto& spec : specs) {
    if (const auto* sw = std::get_if<SoftwareEvent>(&spec.kind)) {
      out.push_back({{spec.text, counting_attr(PERF_TYPE_SOFTWARE, sw->config)}, false, ""});
    } else {
      out.push_back(tracepoint(root, spec.text, std::get<TracepointEvent>(spec.kind)));
    }
  }
  return out;
}

}  // namespace kvmprof
