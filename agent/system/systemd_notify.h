#pragma once
// Telling systemd how the agent is doing (sd_notify(3), libsystemd), for a Type=notify unit
// with WatchdogSec: READY=1 once /metrics answers, RELOADING=1 and READY=1 around a reload,
// STOPPING=1 at the end, STATUS= lines that `systemctl status` shows, and WATCHDOG=1 from the
// collection loop, so a loop that hangs gets the agent restarted. Outside systemd (no
// NOTIFY_SOCKET) every call does nothing.
#include <chrono>
#include <optional>
#include <string>

namespace kvmprof {

class SystemdNotify {
 public:
  void ready(const std::string& status) const;
  void reloading() const;
  void stopping() const;
  void status(const std::string& status) const;
  void watchdog() const;
  // How often to ping: half of WatchdogSec, or nothing when the unit has no watchdog for us.
  static std::optional<std::chrono::milliseconds> watchdog_every();
};

}  // namespace kvmprof
