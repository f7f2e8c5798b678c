#include "agent/cli.h"

namespace kvmprof {

std::optional<CliOptions> parse_cli(const std::vector<std::string>& args, CliError& error) {
  CliOptions opts;
  size_t i = 0;
  if (i < args.size() && (args[i] == "run" || args[i] == "check-config")) opts.command = args[i++];
  auto value = [&](const std::string& flag) -> std::optional<std::string> {
    if (i + 1 >= args.size()) {
      error.message = flag + " needs a value";
      return std::nullopt;
    }
    return args[++i];
  };
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    std::optional<std::string> v;
    if (a == "-h" || a == "--help") {
      opts.command = "help";
    } else if (a == "--version") {
      opts.command = "version";
    } else if (a == "-c" || a == "--config") {
      if (!(v = value(a))) return std::nullopt;
      opts.config_path = *v;
      opts.config_given = true;
    } else if (a == "--root") {
      if (!(v = value(a))) return std::nullopt;
      opts.root = *v;
    } else if (a == "--log-level") {
      if (!(v = value(a))) return std::nullopt;
      opts.log_level = *v;
    } else if (a == "--listen") {
      if (!(v = value(a))) return std::nullopt;
      opts.listen = *v;
    } else if (opts.command == "check-config" && !opts.config_given && !a.starts_with('-')) {
      opts.config_path = a;
      opts.config_given = true;
    } else {
      error.message = "unknown argument '" + a + "' (see kvmprof-agent --help)";
      return std::nullopt;
    }
  }
  return opts;
}

std::string help_text() {
  return R"(kvmprof-agent: per-VM and per-vCPU cost of KVM guests, served to Prometheus.

Usage:
  kvmprof-agent [run] [--config FILE] [--listen ADDR] [--root DIR] [--log-level LEVEL]
  kvmprof-agent check-config FILE
  kvmprof-agent --help | --version

Commands:
  run            (default) find every running VM through libvirt, measure each vCPU thread
                 (guest / host kernel / host user CPU time, run-queue wait, VM exits, perf
                 software events and KVM tracepoints) and serve them at /metrics.
  check-config   validate FILE; prints FILE:LINE:COLUMN: problem and exits 2 if it is wrong.

Options:
  -c, --config FILE    config file (default /etc/kvmprof/agent.yaml; built-in defaults if the
                       default file does not exist)
  --listen ADDR        override the config's listen address, e.g. 127.0.0.1:9477 or :0
  --root DIR           read /proc and /sys under DIR (e.g. /host in a container)
  --log-level LEVEL    error | warning | info (default) | debug

Signals: SIGTERM/SIGINT stop cleanly (every perf and procfs fd is closed).
Needs root, or CAP_PERFMON + CAP_SYS_PTRACE with read access to libvirt's socket and /proc.

Example:
  kvmprof-agent --config /etc/kvmprof/agent.yaml
  curl -s localhost:9477/metrics | grep kvmprof_vcpu_cpu_seconds_total
)";
}

}  // namespace kvmprof
