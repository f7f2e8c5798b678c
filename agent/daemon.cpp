#include "agent/daemon.h"

#include <sys/resource.h>
#include <sys/stat.h>

#include "agent/config_load.h"
#include "agent/system/host_probe.h"
#include "policy/policy_select.h"
#include "agent/system/log.h"
#include "exporters/landing_page.h"

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

HostModel probed(const HostRoot& root, PerfBackend& perf) {
  HostModel host = probe_host(root);
  host.kernel = probe_kernel(perf);
  return host;
}

int64_t mtime_of(const std::string& path) {
  struct stat st{};
  return path.empty() || ::stat(path.c_str(), &st) != 0 ? 0 : static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

}  // namespace

Daemon::Daemon(AgentConfig config, std::string config_path, std::string root)
    : config_(std::move(config)),
      config_path_(std::move(config_path)),
      root_(std::move(root)),
      host_(probed(root_, perf_)),
      collector_(root_, perf_, plan(config_)),
      metrics_(store_, BuildInfo{KVMPROF_VERSION, KVMPROF_REVISION}) {
  cycle_ = plan(config_).cycle();
}

Daemon::~Daemon() = default;

CollectorPlan Daemon::plan(const AgentConfig& config) {
  auto one = [&](const Policy& policy) {
    return make_policy_plan(policy, plan_events(root_, perf_, policy.events, host_, builtin_quirks()),
                            config.limits.max_group_size);
  };
  CollectorPlan out{{}, one(config.default_policy), config.limits, config.interval};
  for (const auto& policy : config.policies) out.policies.push_back(one(policy));
  return out;
}

int Daemon::run() {
  raise_nofile_limit();
  reload_success_at_ = unix_now();
  config_mtime_ = mtime_of(config_path_);
  publish(collector_.collect(nullptr, false), Clock::duration::zero());  // scrapes never find no snapshot
  if (auto started = start_http(); !started.ok()) {
    const Error& e = started.error();
    log_error("cannot serve HTTP: " + e.message() +
              (e.err == EADDRINUSE ? " (another kvmprof-agent or another program has this port; stop it or choose "
                                     "another 'listen' in the config)"
               : e.err == EADDRNOTAVAIL ? " (this host has no such address)"
               : e.err == EACCES ? " (ports below 1024 need CAP_NET_BIND_SERVICE)"
                                 : ""));
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
  libvirt_->set_metadata_uris(metadata_uris(config_.policies));
  arm_cycle(Clock::duration::zero());
  io_.run();
  libvirt_.reset();
  log_info("stopped");
  return 0;
}

Result<bool> Daemon::start_http() {
  auto listen = std::get<ListenAddress>(parse_listen(config_.listen));  // validated with the config
  const BuildInfo build{KVMPROF_VERSION, KVMPROF_REVISION};
  auto landing = std::make_shared<const std::string>(landing_page(build, config_.metrics_path));
  HttpRoutes routes{
      {config_.metrics_path, [this](const HttpRequest& r) { return metrics_.serve(r); }},
      {"/", [landing](const HttpRequest&) { return HttpResponse{200, "text/html; charset=utf-8", landing, false}; }},
  };
  auto server = HttpServer::start(listen, std::move(routes));
  if (!server.ok()) return server.error();
  http_ = std::move(*server);
  log_info("serving " + http_->url() + config_.metrics_path);
  return true;
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
  watch_config_file();
  Snapshot snapshot = collector_.collect(domains ? &*domains : nullptr, domains.has_value());
  snapshot.libvirt_up = domains.has_value();
  publish(std::move(snapshot), Clock::now() - start);
  arm_cycle(cycle_ - (Clock::now() - start));
}

void Daemon::publish(Snapshot snapshot, Clock::duration took) {
  observe(durations_, std::chrono::duration<double>(took).count());
  snapshot.collection_duration = durations_;
  snapshot.config_reload_ok = reload_ok_;
  snapshot.config_reload_success_timestamp = reload_success_at_;
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
    reload("SIGHUP");
    signals_.async_wait([this](auto ec, int s) { if (!ec) on_signal(s); });
    return;
  }
  log_info(signo == SIGTERM ? "SIGTERM: stopping" : "SIGINT: stopping");
  io_.stop();
}

// A changed file reloads like SIGHUP; its mtime is looked at no more than every 5 s.
void Daemon::watch_config_file() {
  constexpr auto kEvery = std::chrono::seconds(5);
  if (config_path_.empty() || Clock::now() - config_checked_at_ < kEvery) return;
  config_checked_at_ = Clock::now();
  int64_t mtime = mtime_of(config_path_);
  if (mtime != 0 && mtime != config_mtime_) reload(config_path_ + " changed");
}

// Valid: applied at once (listen and metrics_path need a restart). Invalid: logged with its
// location; the running config stays and kvmprof_config_last_reload_successful says 0.
void Daemon::reload(const std::string& why) {
  if (config_path_.empty()) return log_warning(why + ": running on built-in defaults; there is no config file to reload");
  config_mtime_ = mtime_of(config_path_);
  auto loaded = load_config_file(config_path_, host_);
  std::vector<ConfigError> errors;
  if (auto* errs = std::get_if<std::vector<ConfigError>>(&loaded)) errors = std::move(*errs);
  AgentConfig* next = std::get_if<AgentConfig>(&loaded);
  reload_ok_ = errors.empty();
  for (const auto& e : errors) log_error("reload (" + why + ") rejected, keeping the running config: " + e.format());
  if (!reload_ok_) return;
  if (next->listen != config_.listen || next->metrics_path != config_.metrics_path) {
    log_warning("reload: listen and metrics_path apply only after a restart");
  }
  next->listen = config_.listen;
  next->metrics_path = config_.metrics_path;
  config_ = std::move(*next);
  CollectorPlan next_plan = plan(config_);
  cycle_ = next_plan.cycle();
  collector_.apply(std::move(next_plan));
  libvirt_->set_metadata_uris(metadata_uris(config_.policies));
  reload_success_at_ = unix_now();
  log_info("reload (" + why + "): applied " + std::to_string(config_.policies.size()) + " policies");
  arm_cycle(Clock::duration::zero());
}

}  // namespace kvmprof
