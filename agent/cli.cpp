#include "agent/cli.h"

namespace kvmprof {

std::optional<CliOptions> parse_cli(const std::vector<std::string>& args, CliError& error) {
  CliOptions opts;
  size_t i = 0;
  for (const char* command : {"run", "check-config", "probe", "explain"}) {
    if (i < args.size() && args[i] == command) opts.command = args[i++];
  }
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
    } else if (a == "--json" && opts.command == "probe") {
      opts.json = true;
    } else if (a == "--guest" && opts.command == "explain") {
      if (!(v = value(a))) return std::nullopt;
      opts.guest = *v;
    } else if (a == "--sample" && opts.command == "explain") {
      opts.sample = true;
    } else if (opts.command == "explain" && !a.starts_with('-')) {
      opts.events.push_back(a);
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
  kvmprof-agent check-config FILE [--root DIR]
  kvmprof-agent probe [--root DIR] [--json]
  kvmprof-agent explain [--root DIR] [--config FILE] [--guest MODE] [--sample] [EVENT...]
  kvmprof-agent --help | --version

Commands:
  run            (default) find every running VM through libvirt, measure each vCPU thread
                 (guest / host kernel / host user CPU time, run-queue wait, VM exits, perf
                 events and KVM tracepoints) and serve them at /metrics.
  check-config   validate FILE, including explicit guest settings this host (or --root DIR)
                 refuses; prints every problem as FILE:LINE:COLUMN: message and exits 2.
  probe          what this host is, as kvmprof sees it: CPU, microcode, PMUs, KVM parameters,
                 perf_event_paranoid, capabilities, kernel perf features, what a sampling
                 ring offers (rdpmc, time, time_zero; use_clockid), applying quirks.
  explain        for each EVENT (default: the config's events), the perf_event_attr that will
                 be opened (field names as perf stat -vv prints them), what it really counts
                 (guest, host, all or split), the status (ok, degraded, refused, unsupported),
                 the reason and the quirk's source. On the live host each decision is also
                 opened through the fallback ladder, so you see what the kernel accepts.
                 Without EVENT it also explains every policy's sampling event; --sample
                 explains the EVENTs as sampling events (99 Hz, kernel callchains): which
                 modes the samples can have and the sampling attrs (sample_type, freq,
                 exclude bits, precise_ip, sample_id_all, use_clockid).

Options:
  -c, --config FILE    config file (default /etc/kvmprof/agent.yaml; built-in defaults if the
                       default file does not exist)
  --listen ADDR        override the config's listen address, e.g. 127.0.0.1:9477 or :0
  --root DIR           read /proc and /sys under DIR (e.g. /host in a container, or a CPU
                       fixture such as tests/fixtures/cpus/intel-skylake-client-new-ucode)
  --log-level LEVEL    error | warning | info (default) | debug
  --guest MODE         explain with guest: auto (default), include, exclude or split
  --sample             explain the EVENTs as sampling events
  --json               probe prints JSON

Events use perf's syntax: cycles, instructions:u, cycles:pp, cycles:G (guest only),
cycles:H (host only), LLC-load-misses, r01c2, cpu/event=0x3c,umask=0x0/, vendor names such
as INST_RETIRED.ANY_P (libpfm4), tracepoints such as kvm:kvm_exit.

Signals: SIGTERM/SIGINT stop cleanly (every perf and procfs fd is closed). SIGHUP (or a
change of the config file) reloads the config: a valid one is applied at once, only the VMs
whose counters change are reopened; an invalid one is logged with its location and the
running config stays.
Needs root, or CAP_PERFMON + CAP_SYS_PTRACE with read access to libvirt's socket and /proc.

Examples:
  kvmprof-agent --config /etc/kvmprof/agent.yaml
  kvmprof-agent explain cycles:p cycles:pG instructions --guest split
  kvmprof-agent explain --sample cpu-clock cycles:p
  kvmprof-agent explain --root tests/fixtures/cpus/intel-skylake-client-old-ucode cycles:p
  curl -s localhost:9477/metrics | grep kvmprof_vcpu_cpu_seconds_total
)";
}

}  // namespace kvmprof
