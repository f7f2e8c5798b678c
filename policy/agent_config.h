#pragma once
// The agent's configuration (config/agent.yaml, `version: 1`) and its validating loader.
// Pure: it takes the file's text and name; the caller reads the file.
#include <chrono>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "policy/event_spec.h"

namespace kvmprof {

struct AgentConfig {
  std::string listen = ":9477";  // [address]:port; ":9477" listens on every IPv4 address
  std::string metrics_path = "/metrics";
  std::string libvirt_uri = "qemu:///system";
  std::chrono::milliseconds interval{5000};
  std::chrono::milliseconds reconnect_max_backoff{30000};
  std::vector<EventSpec> events;  // counted per vCPU thread, one perf group per thread
};

struct ConfigError {
  std::string file;
  int line = 0;    // 1-based
  int column = 0;  // 1-based
  std::string message;

  std::string format() const;  // "FILE:LINE:COLUMN: message"
};

using ConfigResult = std::variant<AgentConfig, ConfigError>;

ConfigResult parse_agent_config(std::string_view text, const std::string& file);

// Defaults used when the file does not list `events`.
std::vector<EventSpec> default_events();

// "5s", "250ms", "2m" -> milliseconds; nullopt-like 0 on error.
std::chrono::milliseconds parse_duration(std::string_view text);

}  // namespace kvmprof
