#include "agent/cli.h"

#include <charconv>

namespace kvmprof {

namespace {

// The flags of `profile`; false when args[i] is none of them. A bad value sets error.
bool parse_profile_flag(const std::vector<std::string>& args, size_t& i, CliOptions& opts, CliError& error) {
  const std::string& a = args[i];
  std::string* text = a == "--domain" ? &opts.domain : a == "--uuid" ? &opts.uuid : a == "--mode" ? &opts.mode
                      : a == "--format" ? &opts.format : a == "-o" || a == "--output" ? &opts.output : nullptr;
  if (!text && a != "--seconds") return false;
  if (i + 1 >= args.size()) {
    error.message = a + " needs a value";
    return true;
  }
  const std::string& v = args[++i];
  if (text) *text = v;
  if (a == "--format" && v != "pprof" && v != "folded" && v != "svg") error.message = "--format must be pprof, folded or svg";
  if (a == "--seconds") {
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), opts.seconds);
    if (ec != std::errc() || p != v.data() + v.size() || opts.seconds < 1) error.message = "--seconds must be a whole number of seconds from 1";
  }
  return true;
}

}  // namespace

std::optional<CliOptions> parse_cli(const std::vector<std::string>& args, CliError& error) {
  CliOptions opts;
  size_t i = 0;
  for (const char* command : {"run", "check-config", "probe", "explain", "profile"}) {
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
    } else if (a == "--log-format") {
      if (!(v = value(a))) return std::nullopt;
      opts.log_format = *v;
    } else if (a == "--listen") {
      if (!(v = value(a))) return std::nullopt;
      opts.listen = *v;
    } else if (a == "--web.config.file" || a.starts_with("--web.config.file=")) {
      if (a.size() > 17) v = a.substr(18);  // node_exporter's spelling: --web.config.file=FILE
      else if (!(v = value(a))) return std::nullopt;
      if (v->empty()) {
        error.message = "--web.config.file needs a file";
        return std::nullopt;
      }
      opts.web_config = *v;
    } else if (a == "--json" && opts.command == "probe") {
      opts.json = true;
    } else if (a == "--guest" && opts.command == "explain") {
      if (!(v = value(a))) return std::nullopt;
      opts.guest = *v;
    } else if (a == "--sample" && opts.command == "explain") {
      opts.sample = true;
    } else if (opts.command == "profile" && parse_profile_flag(args, i, opts, error)) {
      if (!error.message.empty()) return std::nullopt;
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
  kvmprof-agent [run] [--config FILE] [--listen ADDR] [--web.config.file FILE] [--root DIR]
                [--log-level LEVEL] [--log-format FORMAT]
  kvmprof-agent check-config FILE [--web.config.file FILE] [--root DIR]
  kvmprof-agent probe [--root DIR] [--json]
  kvmprof-agent explain [--root DIR] [--config FILE] [--guest MODE] [--sample] [EVENT...]
  kvmprof-agent profile [--domain NAME | --uuid UUID] [--seconds N] [--mode MODES]
                        [--format pprof|folded|svg] [-o FILE] [--config FILE | --listen ADDR]
  kvmprof-agent --help | --version

Commands:
  run            (default) find every running VM through libvirt, measure each vCPU thread
                 (guest / host kernel / host user CPU time, run-queue wait, VM exits, perf
                 events and KVM tracepoints) and serve them at /metrics.
  check-config   validate FILE, including explicit guest settings this host (or --root DIR)
                 refuses, and its web config with the certificates it names; prints every
                 problem as FILE:LINE:COLUMN: message and exits 2.
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
  profile        asks the running agent (at the config's listen address, or --listen) for the
                 profile of a VM's last N seconds (default 30, at most profiles.window) and
                 writes it to FILE (default kvmprof-NAME.svg / .folded / .pb.gz; - for stdout):
                 svg is a flame graph for a browser, folded is for flamegraph.pl, pprof is for
                 go tool pprof. --mode keeps only host, guest, host_kernel, host_user,
                 guest_kernel, guest_user or hypervisor samples (comma-separated). Without
                 --domain or --uuid: every VM. The VM's policy needs a sampling: block.

Options:
  -c, --config FILE    config file (default /etc/kvmprof/agent.yaml; built-in defaults if the
                       default file does not exist)
  --listen ADDR        override the config's listen address, e.g. 127.0.0.1:9477 or :0
                       (profile: where the running agent listens)
  --web.config.file FILE
                       TLS and basic auth for every endpoint, in the Prometheus exporter
                       toolkit's format (as node_exporter; promtool check web-config checks
                       it): tls_server_config (cert_file, key_file, client_auth_type,
                       client_ca_file, min_version, ...), http_server_config (headers),
                       basic_auth_users (user: bcrypt hash). Overrides the config's web_config.
                       Reloaded with the config (rotated certificates too); a bad one keeps the
                       running one. Example: deploy/web-config.yml
  --root DIR           read /proc and /sys under DIR (e.g. /host in a container, or a CPU
                       fixture such as tests/fixtures/cpus/intel-skylake-client-new-ucode)
  --log-level LEVEL    error: the agent cannot do what it was asked (it exits, or a VM or
                       source is not measured); warning: degraded, with what to do; info
                       (default): start, reloads, VMs and sources coming and going; debug:
                       per-cycle detail
  --log-format FORMAT  text (default), logfmt (ts=... level=... msg="...") or json, one line
                       per message; under systemd each line starts with its journald priority
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
Needs root, or CAP_PERFMON (perf on QEMU's threads), CAP_SYS_PTRACE (QEMU's maps, for profiles),
CAP_DAC_READ_SEARCH (tracefs, for kvm:* events) and CAP_SYSLOG (kernel symbols), with libvirt's
read-only socket; it logs at start which it has and what the missing ones cost. The systemd
unit runs it as user kvmprof with exactly these (deploy/kvmprof-agent.service).

Examples:
  kvmprof-agent --config /etc/kvmprof/agent.yaml
  kvmprof-agent --web.config.file /etc/kvmprof/web-config.yml   # TLS and basic auth
  kvmprof-agent explain cycles:p cycles:pG instructions --guest split
  kvmprof-agent explain --sample cpu-clock cycles:p
  kvmprof-agent explain --root tests/fixtures/cpus/intel-skylake-client-old-ucode cycles:p
  kvmprof-agent profile --domain web-1 --format svg      # then open kvmprof-web-1.svg
  go tool pprof -top http://localhost:9477/debug/pprof/profile?seconds=10
  curl -s localhost:9477/metrics | grep kvmprof_vcpu_cpu_seconds_total
)";
}

}  // namespace kvmprof
