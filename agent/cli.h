#pragma once
// Command line: `kvmprof-agent [run] [options]`, `check-config FILE`, `--help`, `--version`.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kvmprof {

struct CliOptions {
  std::string command = "run";  // "run", "check-config", "probe", "explain", "profile", "help", "version"
  std::string config_path = "/etc/kvmprof/agent.yaml";
  bool config_given = false;
  std::string root = "/";
  std::string log_level = "info";
  std::string log_format = "text";  // text, logfmt or json
  std::optional<std::string> listen;  // overrides the config's `listen`
  std::optional<std::string> web_config;  // --web.config.file: overrides the config's `web_config`
  bool json = false;                  // probe --json
  std::string guest = "auto";         // explain --guest
  std::vector<std::string> events;    // explain EVENT...
  bool sample = false;                // explain --sample: the events as sampling events
  // profile: which VM, how long, which modes, what format, where to
  std::string domain, uuid, mode;
  int64_t seconds = 30;
  std::string format = "pprof";
  std::string output;  // "-": stdout; empty: kvmprof-<domain>.<ext>
};

struct CliError {
  std::string message;
};

// Exit codes: 0 fine, 1 runtime failure, 2 bad usage or bad config.
inline constexpr int kExitOk = 0, kExitFailure = 1, kExitUsage = 2;

std::optional<CliOptions> parse_cli(const std::vector<std::string>& args, CliError& error);
std::string help_text();

}  // namespace kvmprof
