// kvmprof-agent entry point: reads flags and the config, then hands over to the Daemon.
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "agent/cli.h"
#include "agent/commands.h"
#include "agent/daemon.h"
#include "agent/system/host_root.h"
#include "agent/system/host_probe.h"
#include "agent/system/log.h"
#include "policy/host_check.h"
#include "policy/quirk_table.h"
#include "policy/agent_config.h"

namespace {

using namespace kvmprof;

void print(const std::vector<ConfigError>& errors) {
  for (const auto& e : errors) std::cerr << e.format() << "\n";
}

// Loads the config; a missing default file means built-in defaults. Every problem is printed.
std::optional<AgentConfig> load_config(const CliOptions& opts) {
  if (!opts.config_given && !std::filesystem::exists(opts.config_path)) {
    log_info("no " + opts.config_path + "; using built-in defaults");
    return std::get<AgentConfig>(parse_agent_config("version: 1\n", "<defaults>"));
  }
  auto text = read_whole_file(opts.config_path);
  if (!text.ok()) {
    std::cerr << opts.config_path << ":1:1: cannot read: " << text.error().message() << "\n";
    return std::nullopt;
  }
  auto parsed = parse_agent_config(*text, opts.config_path);
  if (auto* errors = std::get_if<std::vector<ConfigError>>(&parsed)) {
    print(*errors);
    return std::nullopt;
  }
  return std::get<AgentConfig>(std::move(parsed));
}

// Explicit guest/host requests this host refuses are config errors too.
bool refused_on_host(const CliOptions& opts, const AgentConfig& config) {
  auto errors = refusals_on_host(config, opts.config_path, probe_host(HostRoot(opts.root)), builtin_quirks());
  print(errors);
  return !errors.empty();
}

int explain(const CliOptions& opts, const AgentConfig& config) {
  auto guest = parse_guest_mode(opts.guest);
  if (!guest) {
    std::cerr << "kvmprof-agent: --guest must be auto, include, exclude or split\n";
    return kExitUsage;
  }
  std::vector<EventSpec> events;
  for (const auto& text : opts.events) {
    auto parsed = parse_event_spec(text);
    if (auto* err = std::get_if<EventSpecError>(&parsed)) {
      std::cerr << "kvmprof-agent: bad event '" << text << "' at column " << err->column + 1 << ": " << err->message << "\n"
                << "  " << text << "\n  " << std::string(err->column, ' ') << "^\n";
      return kExitUsage;
    }
    events.push_back(std::get<EventSpec>(parsed));
  }
  if (events.empty()) {
    for (const auto& e : config.default_policy.events) events.push_back(e.spec);
  }
  return run_explain(opts.root, events, *guest);
}

}  // namespace

int main(int argc, char** argv) {
  CliError cli_error;
  auto opts = parse_cli(std::vector<std::string>(argv + 1, argv + argc), cli_error);
  if (!opts) {
    std::cerr << "kvmprof-agent: " << cli_error.message << "\n";
    return kExitUsage;
  }
  if (opts->command == "help") {
    std::cout << help_text();
    return kExitOk;
  }
  if (opts->command == "version") {
    std::cout << "kvmprof-agent " << KVMPROF_VERSION << "\n";
    return kExitOk;
  }
  LogLevel level{};
  if (!parse_log_level(opts->log_level, level)) {
    std::cerr << "kvmprof-agent: --log-level must be error, warning, info or debug\n";
    return kExitUsage;
  }
  set_log_level(level);
  if (opts->command == "probe") return run_probe(opts->root, opts->json);
  auto config = load_config(*opts);
  if (!config) return kExitUsage;
  if (opts->command == "explain") return explain(*opts, *config);
  if (refused_on_host(*opts, *config)) return kExitUsage;
  if (opts->command == "check-config") {
    std::cout << opts->config_path << ": ok\n";
    return kExitOk;
  }
  if (opts->listen) config->listen = *opts->listen;
  std::string path = opts->config_given || std::filesystem::exists(opts->config_path) ? opts->config_path : "";
  return Daemon(std::move(*config), path, opts->root).run();
}
