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

std::string quote(std::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : std::string("\\x") + kHex[c >> 4] + kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

void log(LogLevel level, std::string_view message) {
  if (level > g_level.load()) return;
  std::string line = std::string("kvmprof-agent ") + kNames[static_cast<size_t>(level)] + ": ";
  for (char c : message) {  // one message, one line, whatever the message holds
    if (c == '\n' || c == '\r') {
      line += c == '\n' ? "\\n" : "\\r";
    } else {
      line += c;
    }
  }
  line += '\n';
  static std::mutex mu;
  std::lock_guard lock(mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace kvmprof
