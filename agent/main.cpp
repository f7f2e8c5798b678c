// kvmprof-agent entry point: reads flags and the config, then hands over to the Daemon.
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "agent/cli.h"
#include "agent/daemon.h"
#include "agent/system/host_root.h"
#include "agent/system/log.h"
#include "policy/agent_config.h"

namespace {

using namespace kvmprof;

// Loads the config; a missing default file means built-in defaults.
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
  if (auto* err = std::get_if<ConfigError>(&parsed)) {
    std::cerr << err->format() << "\n";
    return std::nullopt;
  }
  return std::get<AgentConfig>(parsed);
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
  auto config = load_config(*opts);
  if (!config) return kExitUsage;
  if (opts->command == "check-config") {
    std::cout << opts->config_path << ": ok\n";
    return kExitOk;
  }
  if (opts->listen) config->listen = *opts->listen;
  return Daemon(std::move(*config), opts->root).run();
}
