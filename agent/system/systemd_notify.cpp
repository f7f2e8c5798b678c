#include "agent/system/systemd_notify.h"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cstdint>

namespace kvmprof {
namespace {

// A status line is one line: what it holds cannot add another assignment.
std::string one_line(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

}  // namespace

void SystemdNotify::ready(const std::string& status) const {
  sd_notify(0, ("READY=1\nSTATUS=" + one_line(status)).c_str());
}

void SystemdNotify::reloading() const { sd_notify(0, "RELOADING=1\nSTATUS=reloading the config"); }

void SystemdNotify::stopping() const { sd_notify(0, "STOPPING=1\nSTATUS=stopping"); }

void SystemdNotify::status(const std::string& status) const { sd_notify(0, ("STATUS=" + one_line(status)).c_str()); }

void SystemdNotify::watchdog() const { sd_notify(0, "WATCHDOG=1"); }

std::optional<std::chrono::milliseconds> SystemdNotify::watchdog_every() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return std::chrono::milliseconds(std::max<uint64_t>(1, usec / 2000));
}

}  // namespace kvmprof
