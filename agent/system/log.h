#pragma once
// Logging to stderr (journald adds its own timestamps under systemd).
// error: the agent cannot do what it was asked (exit follows or a VM is not measured);
// warning: degraded but running, with what to do; info: lifecycle; debug: per-cycle detail.
#include <string>
#include <string_view>

namespace kvmprof {

enum class LogLevel { kError = 0, kWarning = 1, kInfo = 2, kDebug = 3 };

void set_log_level(LogLevel level);
bool parse_log_level(std::string_view text, LogLevel& level);
void log(LogLevel level, std::string_view message);

inline void log_error(std::string_view m) { log(LogLevel::kError, m); }
inline void log_warning(std::string_view m) { log(LogLevel::kWarning, m); }
inline void log_info(std::string_view m) { log(LogLevel::kInfo, m); }
inline void log_debug(std::string_view m) { log(LogLevel::kDebug, m); }

// An outside string (a VM name, a libvirt message, a path) for a log line: in double quotes,
// with quotes, backslashes and control characters escaped, so it can never end the line or
// forge another one. Valid UTF-8 stays readable.
std::string quote(std::string_view text);

}  // namespace kvmprof
