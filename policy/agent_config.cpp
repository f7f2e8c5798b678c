#include "policy/agent_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <set>

namespace kvmprof {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kMinInterval{100};
constexpr milliseconds kMaxInterval{3'600'000};

// Thrown inside the loader only; turned into a ConfigError at its edge.
struct Invalid {
  YAML::Mark mark;
  std::string message;
};

[[noreturn]] void fail(const YAML::Node& node, std::string message) {
  throw Invalid{node.Mark(), std::move(message)};
}

std::string scalar(const YAML::Node& node, const std::string& key) {
  if (!node.IsScalar()) fail(node, "'" + key + "' must be a string");
  return node.Scalar();
}

void check_keys(const YAML::Node& map, const std::set<std::string>& allowed,
                const std::string& where) {
  std::set<std::string> seen;
  for (const auto& entry : map) {
    const std::string key = entry.first.IsScalar() ? entry.first.Scalar() : "";
    if (!allowed.contains(key)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      fail(entry.first, "unknown key '" + key + "' in " + where + " (allowed: " + list + ")");
    }
    if (!seen.insert(key).second) fail(entry.first, "duplicate key '" + key + "'");
  }
}

milliseconds duration(const YAML::Node& node, const std::string& key, milliseconds min) {
  milliseconds value = parse_duration(scalar(node, key));
  if (value.count() == 0) fail(node, "'" + key + "' must be a duration such as 5s, 500ms or 1m");
  if (value < min || value > kMaxInterval) {
    fail(node, "'" + key + "' must be between " + std::to_string(min.count()) + "ms and 1h");
  }
  return value;
}

void check_listen(const YAML::Node& node, const std::string& listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) fail(node, "'listen' must be [address]:port, e.g. :9477");
  std::string_view port = std::string_view(listen).substr(colon + 1);
  unsigned value = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || p != port.data() + port.size() || value > 65535) {
    fail(node, "'listen' port must be a number from 0 to 65535");
  }
}

std::vector<EventSpec> events(const YAML::Node& node) {
  if (!node.IsSequence()) fail(node, "'events' must be a list of event specs");
  std::vector<EventSpec> out;
  std::set<std::string> seen;
  for (const auto& item : node) {
    auto parsed = parse_event_spec(scalar(item, "events[]"));
    if (auto* err = std::get_if<EventSpecError>(&parsed)) {
      YAML::Mark mark = item.Mark();
      mark.column += static_cast<int>(err->column) + (item.Tag() == "!" ? 1 : 0);
      throw Invalid{mark, err->message};
    }
    auto& spec = std::get<EventSpec>(parsed);
    if (!seen.insert(spec.text).second) fail(item, "event '" + spec.text + "' is listed twice");
    out.push_back(std::move(spec));
  }
  return out;
}

void load_libvirt(const YAML::Node& node, AgentConfig& config) {
  if (!node.IsMap()) fail(node, "'libvirt' must be a map with 'uri' and 'reconnect_max_backoff'");
  check_keys(node, {"uri", "reconnect_max_backoff"}, "libvirt");
  if (node["uri"]) config.libvirt_uri = scalar(node["uri"], "uri");
  if (node["reconnect_max_backoff"]) {
    config.reconnect_max_backoff =
        duration(node["reconnect_max_backoff"], "reconnect_max_backoff", milliseconds(1000));
  }
}

AgentConfig load(const YAML::Node& root) {
  if (!root.IsMap()) fail(root, "the config must be a map with at least 'version: 1'");
  check_keys(root, {"version", "listen", "metrics_path", "libvirt", "interval", "events"}, "config");
  if (!root["version"]) fail(root, "missing 'version: 1'");
  if (scalar(root["version"], "version") != "1") fail(root["version"], "unsupported version; expected 1");
  AgentConfig config;
  config.events = default_events();
  if (root["listen"]) {
    config.listen = scalar(root["listen"], "listen");
    check_listen(root["listen"], config.listen);
  }
  if (root["metrics_path"]) {
    config.metrics_path = scalar(root["metrics_path"], "metrics_path");
    if (!config.metrics_path.starts_with('/')) fail(root["metrics_path"], "'metrics_path' must start with '/'");
  }
  if (root["libvirt"]) load_libvirt(root["libvirt"], config);
  if (root["interval"]) config.interval = duration(root["interval"], "interval", kMinInterval);
  if (root["events"]) config.events = events(root["events"]);
  return config;
}

// yaml-cpp marks are 0-based, and -1 for nodes without a position (an empty document).
ConfigError error_at(const std::string& file, const YAML::Mark& mark, std::string message) {
  return ConfigError{file, std::max(mark.line, 0) + 1, std::max(mark.column, 0) + 1, std::move(message)};
}

}  // namespace

std::string ConfigError::format() const {
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

ConfigResult parse_agent_config(std::string_view text, const std::string& file) {
  try {
    return load(YAML::Load(std::string(text)));
  } catch (const Invalid& e) {
    return error_at(file, e.mark, e.message);
  } catch (const YAML::Exception& e) {
    return error_at(file, e.mark, e.msg);
  }
}

std::vector<EventSpec> default_events() {
  std::vector<EventSpec> out;
  for (const char* name : {"task-clock", "context-switches", "cpu-migrations", "page-faults",
                           "kvm:kvm_exit", "kvm:kvm_pio"}) {
    out.push_back(std::get<EventSpec>(parse_event_spec(name)));
  }
  return out;
}

milliseconds parse_duration(std::string_view text) {
  uint64_t value = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || p == text.data()) return milliseconds(0);
  const std::map<std::string_view, uint64_t> units{{"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}};
  auto unit = units.find(std::string_view(p, text.data() + text.size() - p));
  if (unit == units.end() || value > 1'000'000'000) return milliseconds(0);
  return milliseconds(value * unit->second);
}

}  // namespace kvmprof
