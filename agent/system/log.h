#pragma once
// Logging to stderr, one line per message.
// error: the agent cannot do what it was asked (exit follows, or a VM or source is not
// measured); warning: degraded but running, with what to do; info: lifecycle (start, reload,
// VMs and sources coming and going); debug: per-cycle detail.
// Formats: text ("kvmprof-agent warning: ..."), logfmt (ts=... level=... msg="...") and json
// ({"ts":...,"level":...,"msg":...}) for log shippers. Under systemd, when stderr is the
// journal (JOURNAL_STREAM names it), each line starts with its sd-daemon priority ("<4>"), so
// journald files it at the right level.
#include <cstdlib>
#include <string>
#include <string_view>

namespace kvmprof {

enum class LogLevel { kError = 0, kWarning = 1, kInfo = 2, kDebug = 3 };
enum class LogFormat { kText, kLogfmt, kJson };

void set_log_level(LogLevel level);
bool parse_log_level(std::string_view text, LogLevel& level);
bool parse_log_format(std::string_view text, LogFormat& format);
// The format, and whether lines carry journald priorities: when JOURNAL_STREAM
// ("DEVICE:INODE") is the file stderr is (sd_journal_stream_fd(3) documents this check).
void set_log_format(LogFormat format, const char* journal_stream = std::getenv("JOURNAL_STREAM"));
void log(LogLevel level, std::string_view message);
// One line as log() writes it, at time `ts` (RFC 3339), without the newline.
std::string format_log_line(LogLevel level, std::string_view message, LogFormat format, bool journal,
                            std::string_view ts);

inline void log_error(std::string_view m) { log(LogLevel::kError, m); }
inline void log_warning(std::string_view m) { log(LogLevel::kWarning, m); }
inline void log_info(std::string_view m) { log(LogLevel::kInfo, m); }
inline void log_debug(std::string_view m) { log(LogLevel::kDebug, m); }

// An outside string (a VM name, a libvirt message, a path) for a log line: in double quotes,
// with quotes, backslashes and control characters escaped, so it can never end the line or
// forge another one. Valid UTF-8 stays readable.
std::string quote(std::string_view text);

}  // namespace kvmprof
