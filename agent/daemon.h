#pragma once
// Daemon: the collection loop on one Boost.Asio io_context (timers, signals, collection,
// reloads), wired to the agent's other threads: the HTTP server's, the libvirt Discovery
// thread, the Planner and the sampler thread (which drains rings under the Sampler's lock). They meet only through values posted to this loop and through the
// snapshot store; nothing the loop does waits on libvirt.
#include <utility>  // before Asio: Boost 1.74 awaitable.hpp uses std::exchange unincluded
#include <boost/asio.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "agent/collect/collector.h"
#include "agent/collect/planner.h"
#include "agent/discovery/discovery.h"
#include "agent/http/http_server.h"
#include "agent/http/snapshot_page.h"
#include "agent/http/profile_page.h"
#include "agent/symbols/symbolizer.h"
#include "agent/system/perf_backend.h"
#include "agent/system/systemd_notify.h"
#include "policy/agent_config.h"
#include "policy/host_model.h"

namespace kvmprof {

using FileStamp = std::pair<int64_t, uint64_t>;  // ctime (ns), inode

class Daemon {
 public:
  using Clock = std::chrono::steady_clock;

  // `config_path` is re-read on SIGHUP and when it changes; empty when running on defaults.
  // The daemon uses `hypervisor` and `perf` (real, or fakes in tests) and probes the host
  // under `root`.
  // `web` is the loaded web config (config.web_config): TLS and basic auth; `web_config_flag`:
  // its path came from --web.config.file, so the config file's web_config does not count.
  Daemon(AgentConfig config, std::string config_path, HostRoot root, Hypervisor& hypervisor, PerfBackend& perf,
         WebSecurityPtr web = plain_http(), bool web_config_flag = false);
  ~Daemon();

  // Serves until SIGTERM, SIGINT or stop(). Returns the process exit code; an exception that
  // escapes the loop is logged and is exit code 1.
  int run();
  void stop();                 // from any thread
  uint16_t http_port() const;  // 0 until serving; from any thread
  // The libvirt thread was stuck in a call at exit and was left behind: the Hypervisor it
  // uses must not be destroyed (exit the process instead).
  bool libvirt_abandoned() const { return libvirt_abandoned_; }

 private:
  int serve();
  Result<bool> start_http();
  void start_threads();
  void stop_threads();
  void arm_cycle(Clock::duration delay);
  void cycle();
  bool libvirt_live() const { return libvirt_answered_ && !libvirt_stuck_; }
  void on_call_started();
  void on_answer(Discovery::Domains domains, const std::string& error);
  void on_planned(CollectorPlan plan, uint64_t generation);
  void publish(Snapshot snapshot, std::optional<Clock::duration> took);
  void republish();
  void log_source_changes(const Snapshot& snapshot);
  void on_signal(int signo);
  void reload(const std::string& why);
  std::variant<WebSecurityPtr, std::vector<ConfigError>> reload_web(const std::string& path) const;
  std::map<std::string, FileStamp> watched_files() const;
  void watch_config_file();
  void apply_profile_limits();
  void ping_watchdog(std::chrono::milliseconds every);

  AgentConfig config_;
  const std::string config_path_;
  const HostRoot root_;
  Hypervisor& hypervisor_;
  PerfBackend& perf_;
  const HostModel host_;
  boost::asio::io_context io_;
  boost::asio::signal_set signals_{io_};
  boost::asio::steady_timer cycle_timer_{io_};
  boost::asio::steady_timer watchdog_{io_};  // a libvirt call that takes too long
  boost::asio::steady_timer systemd_watchdog_{io_};
  SystemdNotify systemd_;
  std::chrono::milliseconds cycle_;          // the shortest interval of any policy
  Collector collector_;
  WebSecurityPtr web_;  // the web config's, as the HTTP server has it
  const bool web_config_flag_;
  SnapshotStore store_;
  SnapshotPage metrics_;  // the metrics_path
  SnapshotPage status_;   // the status page at `/`
  Symbolizer symbolizer_;
  ProfilePage profiles_;  // on the HTTP threads
  std::shared_ptr<const Snapshot> last_;  // the last published snapshot
  HistogramData durations_;
  std::map<std::string, std::string> source_state_;  // source -> last logged state
  Discovery::Domains domains_;  // libvirt's last answer
  bool fresh_ = false;          // an answer the collector has not seen yet
  bool libvirt_answered_ = false;
  bool libvirt_stuck_ = false;  // a call has run longer than the timeout
  uint64_t generation_ = 0;     // of the config being planned; older plans are dropped
  std::string applying_;        // why the plan being made was asked for, for the log
  bool reload_ok_ = true;
  double reload_success_at_ = 0;
  std::map<std::string, FileStamp> watched_;  // file -> its stamp when last (re)loaded
  std::map<std::string, FileStamp> seen_;     // file -> its stamp at the last look
  Clock::time_point config_checked_at_{};
  std::atomic<uint16_t> http_port_{0};
  bool libvirt_abandoned_ = false;
  // Threads last: they are stopped (and the server closed) before what they use goes away.
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<Planner> planner_;
  std::unique_ptr<Discovery> discovery_;
  std::unique_ptr<SamplerThread> sampler_thread_;
};

}  // namespace kvmprof
