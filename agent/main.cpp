// kvmprof-agent entry point: reads flags and the config, then hands over to the Daemon.
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "agent/cli.h"
#include "agent/commands.h"
#include "agent/config_load.h"
#include "agent/daemon.h"
#include "agent/discovery/libvirt_hypervisor.h"
#include "agent/profile_command.h"
#include "agent/system/host_probe.h"
#include "agent/system/log.h"
#include "policy/listen_address.h"
#include "policy/series_estimate.h"

namespace {

using namespace kvmprof;

// The config to run, check or explain with; a missing default file means built-in defaults.
// Every problem is printed as FILE:LINE:COLUMN.
std::optional<AgentConfig> load_config(const CliOptions& opts) {
  if (!opts.config_given && !std::filesystem::exists(opts.config_path)) {
    if (opts.command != "profile") log_info("no " + opts.config_path + "; using built-in defaults");
    return default_config();
  }
  auto loaded = opts.command == "explain" || opts.command == "profile" ? parse_config_file(opts.config_path)
                                          : load_config_file(opts.config_path, probe_host(HostRoot(opts.root)));
  if (auto* errors = std::get_if<std::vector<ConfigError>>(&loaded)) {
    for (const auto& e : *errors) std::cerr << e.format() << "\n";
    return std::nullopt;
  }
  return std::get<AgentConfig>(std::move(loaded));
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
  std::vector<SamplingConfig> sampling;
  if (opts.sample && events.empty()) {
    std::cerr << "kvmprof-agent: explain --sample needs the EVENTs to explain as sampling events (without --sample, "
                 "explain shows the config's sampling events)\n";
    return kExitUsage;
  }
  if (opts.sample) {
    for (const auto& spec : events) {
      sampling.emplace_back().event = PolicyEvent{spec, *guest, {}};
    }
    events.clear();
  } else if (events.empty()) {
    for (const auto& e : config.default_policy.events) events.push_back(e.spec);
    for (const auto& p : config.policies) {
      if (p.sampling) sampling.push_back(*p.sampling);
    }
    if (config.default_policy.sampling) sampling.push_back(*config.default_policy.sampling);
  }
  return run_explain(opts.root, events, *guest, sampling);
}

// The agent with the real libvirt and kernel. When the libvirt thread is stuck in a call at
// exit, the process ends without destroying what that thread still uses.
int run_daemon(AgentConfig config, const std::string& path, const std::string& root, WebSecurityPtr web, bool web_flag) {
  auto libvirt = std::make_unique<LibvirtHypervisor>(config.libvirt_uri);
  RealPerfBackend perf;
  int code = kExitFailure;
  bool abandoned = false;
  {
    Daemon daemon(std::move(config), path, HostRoot(root), *libvirt, perf, std::move(web), web_flag);
    code = daemon.run();
    abandoned = daemon.libvirt_abandoned();
  }
  if (abandoned) {
    std::fflush(stderr);
    std::_Exit(code);
  }
  return code;
}

// The web config (TLS, basic auth) with the certificates it names; problems are printed as
// FILE:LINE:COLUMN and are nullptr.
WebSecurityPtr load_web(const AgentConfig& config) {
  std::vector<std::string> warnings;
  auto loaded = load_web_security(config.web_config, warnings);
  for (const auto& w : warnings) log_warning(w);
  if (auto* errors = std::get_if<std::vector<ConfigError>>(&loaded)) {
    for (const auto& e : *errors) std::cerr << e.format() << "\n";
    return nullptr;
  }
  return std::get<WebSecurityPtr>(loaded);
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
  LogFormat format{};
  if (!parse_log_format(opts->log_format, format)) {
    std::cerr << "kvmprof-agent: --log-format must be text, logfmt or json\n";
    return kExitUsage;
  }
  set_log_format(format);
  if (opts->command == "probe") return run_probe(opts->root, opts->json);
  if (opts->listen) {
    auto listen = parse_listen(*opts->listen);
    if (auto* why = std::get_if<std::string>(&listen)) {
      std::cerr << "kvmprof-agent: --listen " << *opts->listen << ": " << *why << "\n";
      return kExitUsage;
    }
  }
  if (opts->command == "check-config" && !opts->config_given && !std::filesystem::exists(opts->config_path)) {
    std::cerr << "kvmprof-agent check-config: no FILE given and " << opts->config_path
              << " does not exist (the agent would run on its built-in defaults); usage: check-config FILE\n";
    return kExitUsage;
  }
  auto config = load_config(*opts);
  if (!config) return kExitUsage;
  if (opts->web_config) config->web_config = *opts->web_config;
  if (opts->command == "explain") return explain(*opts, *config);
  if (opts->command == "profile") {
    return run_profile(*opts, std::get<ListenAddress>(parse_listen(opts->listen.value_or(config->listen))));
  }
  auto web = load_web(*config);
  if (!web) return kExitUsage;
  if (opts->command == "check-config") {
    std::cout << opts->config_path << ": ok" << (config->web_config.empty() ? "" : ", " + config->web_config + ": ok") << "\n";
    std::cout << describe_series(*config);
    return kExitOk;
  }
  if (opts->listen) config->listen = *opts->listen;
  std::string path = opts->config_given || std::filesystem::exists(opts->config_path) ? opts->config_path : "";
  return run_daemon(std::move(*config), path, opts->root, std::move(web), opts->web_config.has_value());
}
