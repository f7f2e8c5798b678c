#pragma once
// Daemon: wires the real implementations together on one Boost.Asio io_context: the
// collection timer, libvirt events and reconnects, signals, and the /metrics server.
#include <utility>  // before Asio: Boost 1.74 awaitable.hpp uses std::exchange unincluded
#include <boost/asio.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "agent/collect/collector.h"
#include "agent/discovery/libvirt_hypervisor.h"
#include "agent/system/perf_backend.h"
#include "policy/host_model.h"
#include "agent/http/http_server.h"
#include "agent/http/metrics_page.h"
#include "policy/agent_config.h"

namespace kvmprof {

class Daemon {
 public:
  // `config_path` is re-read on SIGHUP and when it changes; empty when running on defaults.
  Daemon(AgentConfig config, std::string config_path, std::string root);
  ~Daemon();
  // Serves until SIGTERM or SIGINT. Returns the process exit code.
  int run();

 private:
  Result<bool> start_http();
  void arm_cycle(std::chrono::steady_clock::duration delay);
  void cycle();
  void publish(Snapshot snapshot, std::chrono::steady_clock::duration took);
  void log_source_changes(const Snapshot& snapshot);
  void connect();
  void lost_connection(const std::string& why);
  void on_signal(int signo);
  void reload(const std::string& why);
  void watch_config_file();
  CollectorPlan plan(const AgentConfig& config);

  AgentConfig config_;
  std::string config_path_;
  HostRoot root_;
  RealPerfBackend perf_;
  HostModel host_;
  boost::asio::io_context io_;
  boost::asio::signal_set signals_{io_};
  boost::asio::steady_timer cycle_timer_{io_};
  boost::asio::steady_timer reconnect_timer_{io_};
  std::chrono::milliseconds backoff_{1000};
  std::chrono::milliseconds cycle_{5000};  // the shortest interval of any policy
  Collector collector_;
  SnapshotStore store_;
  MetricsPage metrics_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<Hypervisor> libvirt_;
  HistogramData durations_;
  std::map<std::string, std::string> source_state_;  // source -> last logged state
  bool reload_ok_ = true;
  double reload_success_at_ = 0;
  int64_t config_mtime_ = 0;
  std::chrono::steady_clock::time_point config_checked_at_{};
};

}  // namespace kvmprof
