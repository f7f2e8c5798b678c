#include "agent/system/log.h"

#include <array>
#include <atomic>
#include <cstdio>
#include <mutex>

namespace kvmprof {
namespace {

std::atomic<LogLevel> g_level{LogLevel::kInfo};
constexpr std::array<const char*, 4> kNames{"error", "warning", "info", "debug"};

}  // namespace

void set_log_level(LogLevel level) { g_level = level; }

bool parse_log_level(std::string_view text, LogLevel& level) {
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (text == kNames[i]) {
      level = static_cast<LogLevel>(i);
      return true;
    }
  }
  return false;
}

void log(LogLevel level, std::string_view message) {
  if (level > g_level.load()) return;
  static std::mutex mu;
  std::lock_guard lock(mu);
  std::fprintf(stderr, "kvmprof-agent %s: %.*s\n", kNames[static_cast<size_t>(level)],
               static_cast<int>(message.size()), message.data());
}

}  // namespace kvmprof
