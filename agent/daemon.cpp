#include "agent/daemon.h"

#include <sys/resource.h>
#include <sys/stat.h>

#include "agent/cli.h"
#include "agent/config_load.h"
#include "agent/system/capabilities.h"
#include "agent/system/host_probe.h"
#include "agent/system/log.h"
#include "exporters/status_page.h"
#include "policy/policy_select.h"

#ifndef KVMPROF_REVISION
#define KVMPROF_REVISION "unknown"
#endif

namespace kvmprof {
namespace {

using Clock = Daemon::Clock;
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

// What changes when a file is written, replaced (rename: a new inode) or has its owner or mode
// changed (chgrp, chmod: the ctime); 0 when it cannot be stat'ed.
FileStamp stamp_of(const std::string& path) {
  struct stat st {};
  if (path.empty() || ::stat(path.c_str(), &st) != 0) return {};
  return {static_cast<int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec, static_cast<uint64_t>(st.st_ino)};
}

// The same VMs as far as the collector cares (exit counts aside): no reason for an early cycle.
bool same_domains(const Discovery::Domains& a, const Discovery::Domains& b) {
  if (!a || !b || a->size() != b->size()) return false;
  return std::equal(a->begin(), a->end(), b->begin(), [](const DomainRecord& x, const DomainRecord& y) {
    return x.uuid == y.uuid && x.id == y.id && x.name == y.name && x.vcpus_current == y.vcpus_current &&
           x.title == y.title && x.metadata == y.metadata;
  });
}

}  // namespace

Daemon::Daemon(AgentConfig config, std::string config_path, HostRoot root, Hypervisor& hypervisor, PerfBackend& perf,
               WebSecurityPtr web, bool web_config_flag)
    : config_(std::move(config)),
      config_path_(std::move(config_path)),
      root_(std::move(root)),
      hypervisor_(hypervisor),
      perf_(perf),
      host_(probed(root_, perf_)),
      cycle_(unplanned(config_).cycle()),
      collector_(root_, perf_, unplanned(config_)),
      web_(std::move(web)),
      web_config_flag_(web_config_flag),
      metrics_(store_, [build = BuildInfo{KVMPROF_VERSION, KVMPROF_REVISION}](const Snapshot& s) { return prometheus_text(s, build); },
               kPrometheusTextType),
      status_(store_,
              [info = StatusInfo{BuildInfo{KVMPROF_VERSION, KVMPROF_REVISION}, config_path_, config_.metrics_path}](
                  const Snapshot& s) { return status_page(s, info); },
              "text/html; charset=utf-8"),
      symbolizer_(root_),
      profiles_(collector_.profiles(), store_, symbolizer_) {
  apply_profile_limits();
}

// profiles: in the config bounds the profile store and the symbol caches.
void Daemon::apply_profile_limits() {
  collector_.profiles().set_limits(config_.profiles);
  symbolizer_.set_limits(SymbolizerLimits{SymbolizerLimits{}.max_files, config_.profiles.symbol_cache_bytes});
  profiles_.set_guest_symbol_bytes(config_.profiles.symbol_cache_bytes);
}

Daemon::~Daemon() = default;

int Daemon::run() {
  int code = kExitFailure;
  try {
    code = serve();
  } catch (const std::exception& e) {
    log_error(std::string("internal error, stopping: ") + e.what());
  }
  stop_threads();  // on every path: a libvirt thread stuck in a call must be known as abandoned
  log_info("stopped");
  return code;
}

void Daemon::stop_threads() {
  sampler_thread_.reset();
  planner_.reset();  // stops between two events
  if (discovery_) libvirt_abandoned_ = !discovery_->stop(Discovery::kStopWait);
}

int Daemon::serve() {
  raise_nofile_limit();
  if (auto status = read_whole_file("/proc/self/status"); status.ok()) log_capabilities(parse_cap_eff(*status));
  reload_success_at_ = unix_now();
  watched_ = seen_ = watched_files();
  publish(collector_.collect(nullptr, false), std::nullopt);  // a scrape never finds no snapshot
  if (auto started = start_http(); !started.ok()) {
    const Error& e = started.error();
    log_error("cannot serve HTTP: " + e.message() +
              (e.err == EADDRINUSE ? " (another kvmprof-agent or another program has this port; stop it or choose "
                                     "another 'listen' in the config)"
               : e.err == EADDRNOTAVAIL ? " (this host has no such address)"
               : e.err == EACCES ? " (ports below 1024 need CAP_NET_BIND_SERVICE)"
                                 : ""));
    return kExitFailure;
  }
  signals_.add(SIGINT);
  signals_.add(SIGTERM);
  signals_.add(SIGHUP);
  signals_.async_wait([this](auto ec, int signo) { if (!ec) on_signal(signo); });
  start_threads();
  arm_cycle(Clock::duration::zero());
  systemd_.ready("serving " + http_->url() + config_.metrics_path);
  if (auto every = SystemdNotify::watchdog_every()) ping_watchdog(*every);
  io_.run();
  return kExitOk;
}

// WATCHDOG=1 from the collection loop itself: if the loop hangs, systemd restarts the agent.
void Daemon::ping_watchdog(std::chrono::milliseconds every) {
  systemd_.watchdog();
  systemd_watchdog_.expires_after(every);
  systemd_watchdog_.async_wait([this, every](auto ec) { if (!ec) ping_watchdog(every); });
}

Result<bool> Daemon::start_http() {
  auto listen = std::get<ListenAddress>(parse_listen(config_.listen));  // validated with the config
  HttpRoutes routes{
      {config_.metrics_path, [this](const HttpRequest& r) { return metrics_.serve(r); }},
      {"/", [this](const HttpRequest& r) { return status_.serve(r); }},
      {"/debug/pprof/profile", [this](const HttpRequest& r) { return profiles_.serve(r, "pprof"); }},
      {"/debug/pprof/flamegraph", [this](const HttpRequest& r) { return profiles_.serve(r, "svg"); }},
  };
  auto server = HttpServer::start(listen, std::move(routes), {}, web_);
  if (!server.ok()) return server.error();
  http_ = std::move(*server);
  http_port_ = http_->port();
  log_info("serving " + http_->url() + config_.metrics_path + " (" + web_->summary +
           (config_.web_config.empty() ? "" : ", from " + quote(config_.web_config)) + ")");
  return true;
}

// The planner and the libvirt thread hand their results to this loop; the collector runs on
// the config's policies without events until the first plan is done.
void Daemon::start_threads() {
  sampler_thread_ = std::make_unique<SamplerThread>(collector_.sampler());
  planner_ = std::make_unique<Planner>(root_, perf_, host_, [this](CollectorPlan plan, uint64_t generation) {
    boost::asio::post(io_, [this, plan = std::move(plan), generation]() mutable { on_planned(std::move(plan), generation); });
  });
  applying_ = "start";
  planner_->request(config_, ++generation_);
  discovery_ = std::make_unique<Discovery>(
      hypervisor_, config_.libvirt_uri,
      Discovery::Callbacks{[this] { boost::asio::post(io_, [this] { on_call_started(); }); },
                           [this](Discovery::Domains domains, const std::string& error) {
                             boost::asio::post(io_, [this, domains, error] { on_answer(domains, error); });
                           }});
  discovery_->start(cycle_, config_.reconnect_max_backoff, metadata_uris(config_.policies));
}

void Daemon::stop() { io_.stop(); }

uint16_t Daemon::http_port() const { return http_port_; }

void Daemon::arm_cycle(Clock::duration delay) {
  auto when = Clock::now() + delay;
  if (cycle_timer_.expiry() > Clock::now() && cycle_timer_.expiry() <= when) return;  // sooner one set
  cycle_timer_.expires_at(when);
  cycle_timer_.async_wait([this](auto ec) { if (!ec) cycle(); });
}

void Daemon::cycle() {
  const auto start = Clock::now();
  watch_config_file();
  Snapshot snapshot = collector_.collect(fresh_ ? domains_.get() : nullptr, libvirt_live());
  fresh_ = false;
  snapshot.libvirt_up = libvirt_live();
  publish(std::move(snapshot), Clock::now() - start);
  arm_cycle(cycle_ - (Clock::now() - start));
}

// A libvirt call began: if it has not answered within the timeout, libvirt counts as down
// (published at once) until it answers.
void Daemon::on_call_started() {
  watchdog_.expires_after(config_.call_timeout(cycle_));
  watchdog_.async_wait([this](auto ec) {
    if (ec || libvirt_stuck_) return;
    libvirt_stuck_ = true;
    log_warning("libvirt has not answered for " + std::to_string(config_.call_timeout(cycle_).count()) +
                " ms; kvmprof_libvirt_up is 0 until it does (the known VMs are still measured)");
    arm_cycle(Clock::duration::zero());
  });
}

void Daemon::on_answer(Discovery::Domains domains, const std::string& error) {
  watchdog_.cancel();
  if (libvirt_stuck_) log_info("libvirt answers again");
  const bool was_live = libvirt_live();
  libvirt_stuck_ = false;
  libvirt_answered_ = domains != nullptr;
  if (!domains) {
    if (was_live) log_warning("libvirt: " + error);
    return arm_cycle(Clock::duration::zero());
  }
  const bool changed = !same_domains(domains, domains_);
  domains_ = std::move(domains);
  fresh_ = true;
  if (changed || !was_live) arm_cycle(Clock::duration::zero());  // VMs that came or went show at once
}

void Daemon::on_planned(CollectorPlan plan, uint64_t generation) {
  if (generation != generation_) return;  // a newer config is being planned
  cycle_ = plan.cycle();
  collector_.apply(std::move(plan));
  discovery_->set_interval(cycle_, config_.reconnect_max_backoff);
  log_info(applying_ + ": applied " + std::to_string(config_.policies.size()) + " policies and the default");
  arm_cycle(Clock::duration::zero());
}

void Daemon::publish(Snapshot snapshot, std::optional<Clock::duration> took) {
  if (took) observe(durations_, std::chrono::duration<double>(*took).count());
  snapshot.collection_duration = durations_;
  snapshot.config_reload_ok = reload_ok_;
  snapshot.config_reload_success_timestamp = reload_success_at_;
  snapshot.profile_store.bytes["symbols"] = symbolizer_.stats().bytes + profiles_.guest_symbol_bytes();
  if (took) log_source_changes(snapshot);  // the first snapshot, before anything was asked, says nothing yet
  last_ = std::make_shared<const Snapshot>(std::move(snapshot));
  store_.publish(last_);
}

// The last snapshot again with what changed outside a cycle (a reload's outcome), at once.
void Daemon::republish() {
  Snapshot copy = *last_;
  copy.config_reload_ok = reload_ok_;
  copy.config_reload_success_timestamp = reload_success_at_;
  last_ = std::make_shared<const Snapshot>(std::move(copy));
  store_.publish(last_);
}

void Daemon::log_source_changes(const Snapshot& snapshot) {
  for (const auto& source : snapshot.sources) {
    std::string state = source.up ? "live" : "not live: " + source.reason;
    std::string& last = source_state_[source.source];
    if (last == state) continue;
    last = state;
    if (source.up || source.reason == kNoVcpuThreads) {
      log_info("source " + source.source + " is " + state);
    } else {
      log_warning("source " + source.source + " is " + state);
    }
  }
}

void Daemon::on_signal(int signo) {
  if (signo == SIGHUP) {
    reload("SIGHUP");
    signals_.async_wait([this](auto ec, int s) { if (!ec) on_signal(s); });
    return;
  }
  log_info(signo == SIGTERM ? "SIGTERM: stopping" : "SIGINT: stopping");
  systemd_.stopping();
  io_.stop();
}

// The config file, the web config and the certificates it names.
std::map<std::string, FileStamp> Daemon::watched_files() const {
  std::map<std::string, FileStamp> files;
  if (!config_path_.empty()) files[config_path_] = stamp_of(config_path_);
  for (const auto& f : web_->files) files[f] = stamp_of(f);
  return files;
}

// A changed file (the config, the web config or a certificate) reloads like SIGHUP, once it
// has stayed the same for one look (not half-written), and so does one that stays gone (an
// editor's rename is over by the next look); looked at no more than every 5 s.
void Daemon::watch_config_file() {
  constexpr auto kEvery = std::chrono::seconds(5);
  if (Clock::now() - config_checked_at_ < kEvery) return;
  config_checked_at_ = Clock::now();
  auto now = watched_files();
  for (const auto& [file, stamp] : now) {
    if (stamp != watched_[file] && stamp == seen_[file]) return reload(quote(file) + (stamp == FileStamp{} ? " is gone" : " changed"));
  }
  seen_ = std::move(now);
}

// The web config again, certificates re-read. The path applies after a restart, and so does
// turning TLS or basic auth on or off (scrapers' settings change with it; a file cut short must
// not open the endpoints).
std::variant<WebSecurityPtr, std::vector<ConfigError>> Daemon::reload_web(const std::string& path) const {
  auto refused = [&](const std::string& why) { return std::vector<ConfigError>{{path, 1, 1, why + " needs a restart"}}; };
  if (path != config_.web_config) {
    return refused("web_config changed from " + quote(config_.web_config) + " to " + quote(path) + ": a new web config file");
  }
  std::vector<std::string> warnings;
  auto loaded = load_web_security(path, warnings, web_.get());
  for (const auto& w : warnings) log_warning(w);
  auto* web = std::get_if<WebSecurityPtr>(&loaded);
  if (web && bool((*web)->tls) != bool(web_->tls)) return refused(std::string("turning TLS ") + ((*web)->tls ? "on" : "off"));
  if (web && (*web)->auth.enabled() != web_->auth.enabled()) {
    return refused(std::string("turning basic auth ") + ((*web)->auth.enabled() ? "on" : "off"));
  }
  return loaded;
}

// Valid: planned off the loop, then applied (listen, metrics_path, web_config and libvirt.uri
// need a restart; the web config's content does not). Invalid: logged with its locations; the
// running config stays. Either way kvmprof_config_last_reload_successful says so at once.
void Daemon::reload(const std::string& why) {
  if (config_path_.empty() && config_.web_config.empty()) {
    return log_warning(why + ": running on built-in defaults; there is no config file to reload");
  }
  systemd_.reloading();
  watched_ = seen_ = watched_files();
  auto loaded = config_path_.empty() ? ConfigResult(config_) : load_config_file(config_path_, host_);
  auto* next_config = std::get_if<AgentConfig>(&loaded);
  auto web = next_config ? reload_web(web_config_flag_ ? config_.web_config : next_config->web_config)
                         : std::vector<ConfigError>{};
  auto* errors = std::get_if<std::vector<ConfigError>>(&loaded);
  if (!errors) errors = std::get_if<std::vector<ConfigError>>(&web);
  if (errors) {
    reload_ok_ = false;
    for (const auto& e : *errors) log_error("reload (" + why + ") rejected, keeping the running config: " + e.format());
    systemd_.ready("reload (" + why + ") rejected, the running config stays: " + errors->front().format());
    return republish();
  }
  AgentConfig& next = std::get<AgentConfig>(loaded);
  if (next.listen != config_.listen || next.metrics_path != config_.metrics_path || next.libvirt_uri != config_.libvirt_uri) {
    log_warning("reload: listen, metrics_path and libvirt.uri apply only after a restart");
  }
  next.listen = config_.listen;
  next.metrics_path = config_.metrics_path;
  next.libvirt_uri = config_.libvirt_uri;
  next.web_config = config_.web_config;  // the same, or --web.config.file's
  config_ = std::move(next);
  web_ = std::get<WebSecurityPtr>(web);
  http_->set_web(web_);
  watched_ = seen_ = watched_files();
  apply_profile_limits();
  reload_ok_ = true;
  reload_success_at_ = unix_now();
  applying_ = "reload (" + why + ")";
  planner_->request(config_, ++generation_);
  discovery_->set_metadata_uris(metadata_uris(config_.policies));
  log_info("reload (" + why + "): web: " + web_->summary);
  systemd_.ready("reloaded (" + why + ")");
  republish();
}

}  // namespace kvmprof
