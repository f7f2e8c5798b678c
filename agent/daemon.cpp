#include "agent/daemon.h"

#include <prometheus/exposer.h>
#include <sys/resource.h>

#include "agent/system/host_probe.h"
#include "agent/system/log.h"

#ifndef KVMPROF_REVISION
#define KVMPROF_REVISION "unknown"
#endif

namespace kvmprof {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kEventDelay = std::chrono::milliseconds(200);  // coalesces bursts of events
const std::vector<double> kDurationBounds{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,   0.25,   0.5,   1,    2.5};

double unix_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

void raise_nofile_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) log_warning("could not raise RLIMIT_NOFILE");
  }
}

void observe(HistogramData& h, double seconds) {
  if (h.counts.empty()) {
    h.bounds = kDurationBounds;
    h.counts.assign(h.bounds.size(), 0);
  }
  for (size_t i = 0; i < h.bounds.size(); ++i) h.counts[i] += seconds <= h.bounds[i] ? 1 : 0;
  ++h.count;
  h.sum += seconds;
}

// Decides every configured event for this host once, at start.
std::vector<PlannedEvent> plan_for_host(const HostRoot& root, PerfBackend& perf, const std::vector<EventSpec>& events) {
  HostModel host = probe_host(root);
  host.kernel = probe_kernel(perf);
  return plan_events(root, perf, events, GuestMode::kAuto, host, builtin_quirks());
}

}  // namespace

std::string civetweb_listen(const std::string& listen) {
  return listen.starts_with(':') ? "0.0.0.0" + listen : listen;
}

Daemon::Daemon(AgentConfig config, std::string root)
    : config_(std::move(config)),
      collector_(HostRoot(root), perf_, plan_for_host(HostRoot(root), perf_, config_.events)) {
  metrics_ = std::make_shared<MetricsCollectable>(store_, BuildInfo{KVMPROF_VERSION, KVMPROF_REVISION});
}

Daemon::~Daemon() = default;

int Daemon::run() {
  raise_nofile_limit();
  started_at_ = unix_now();
  try {
    start_exposer();
  } catch (const std::exception& e) {
    log_error("cannot listen on " + config_.listen + ": " + e.what() +
              " (is another agent running? choose another 'listen' in the config)");
    return 1;
  }
  libvirt_ = std::make_unique<LibvirtHypervisor>(
      config_.libvirt_uri,
      HypervisorEvents{[this](const std::string& what) {
                         boost::asio::post(io_, [this, what] {
                           log_info("libvirt event: " + what);
                           arm_cycle(kEventDelay);
                         });
                       },
                       [this](const std::string& why) {
                         boost::asio::post(io_, [this, why] { lost_connection(why); });
                       }});
  signals_.add(SIGINT);
  signals_.add(SIGTERM);
  signals_.add(SIGHUP);
  signals_.async_wait([this](auto ec, int signo) { if (!ec) on_signal(signo); });
  connect();
  arm_cycle(Clock::duration::zero());
  io_.run();
  libvirt_.reset();
  log_info("stopped");
  return 0;
}

void Daemon::start_exposer() {
  const std::string address = civetweb_listen(config_.listen);
  exposer_ = std::make_unique<prometheus::Exposer>(address);
  exposer_->RegisterCollectable(metrics_, config_.metrics_path);
  auto ports = exposer_->GetListeningPorts();  // the real port when `listen` asked for port 0
  log_info("serving http://" + address.substr(0, address.rfind(':')) + ":" +
           std::to_string(ports.empty() ? 0 : ports.front()) + config_.metrics_path);
}

void Daemon::arm_cycle(Clock::duration delay) {
  auto when = Clock::now() + delay;
  if (cycle_timer_.expiry() > Clock::now() && cycle_timer_.expiry() <= when) return;  // sooner one set
  cycle_timer_.expires_at(when);
  cycle_timer_.async_wait([this](auto ec) { if (!ec) cycle(); });
}

void Daemon::cycle() {
  auto start = Clock::now();
  std::optional<std::vector<DomainRecord>> domains;
  if (libvirt_->connected()) {
    auto listed = libvirt_->running_domains();
    if (listed.ok()) {
      domains = std::move(*listed);
    } else {
      lost_connection(listed.error().message());
    }
  }
  Snapshot snapshot = collector_.collect(domains);
  snapshot.libvirt_up = domains.has_value();
  publish(std::move(snapshot), Clock::now() - start);
  arm_cycle(config_.interval - (Clock::now() - start));
}

void Daemon::publish(Snapshot snapshot, Clock::duration took) {
  observe(durations_, std::chrono::duration<double>(took).count());
  snapshot.collection_duration = durations_;
  snapshot.config_reload_ok = true;
  snapshot.config_reload_success_timestamp = started_at_;
  log_source_changes(snapshot);
  store_.publish(std::make_shared<const Snapshot>(std::move(snapshot)));
}

void Daemon::log_source_changes(const Snapshot& snapshot) {
  for (const auto& source : snapshot.sources) {
    std::string state = source.up ? "live" : "not live: " + source.reason;
    std::string& last = source_state_[source.source];
    if (last == state) continue;
    last = state;
    if (source.up) {
      log_info("source " + source.source + " is live");
    } else {
      log_warning("source " + source.source + " is " + state);
    }
  }
}

void Daemon::connect() {
  auto connected = libvirt_->connect();
  if (connected.ok()) {
    log_info("connected to " + config_.libvirt_uri);
    backoff_ = std::chrono::milliseconds(1000);
    arm_cycle(Clock::duration::zero());
    return;
  }
  log_warning(connected.error().message() + "; retrying in " + std::to_string(backoff_.count() / 1000) +
              " s (is libvirtd running? systemctl start libvirtd)");
  reconnect_timer_.expires_after(backoff_);
  reconnect_timer_.async_wait([this](auto ec) { if (!ec) connect(); });
  backoff_ = std::min(backoff_ * 2, config_.reconnect_max_backoff);
}

void Daemon::lost_connection(const std::string& why) {
  if (!libvirt_->connected()) return;
  log_warning("lost libvirt connection: " + why + "; still measuring the known VMs");
  libvirt_->disconnect();
  connect();
}

void Daemon::on_signal(int signo) {
  if (signo == SIGHUP) {
    log_warning("SIGHUP: live config reload is not implemented yet; restart the agent to apply changes");
    signals_.async_wait([this](auto ec, int s) { if (!ec) on_signal(s); });
    return;
  }
  log_info(signo == SIGTERM ? "SIGTERM: stopping" : "SIGINT: stopping");
  io_.stop();
}

}  // namespace kvmprof
