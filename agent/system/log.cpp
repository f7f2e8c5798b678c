#include "agent/system/log.h"

#include <sys/stat.h>
#include <time.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace kvmprof {
namespace {

std::atomic<LogLevel> g_level{LogLevel::kInfo};
std::atomic<LogFormat> g_format{LogFormat::kText};
std::atomic<bool> g_journal{false};
constexpr std::array<const char*, 4> kNames{"error", "warning", "info", "debug"};
constexpr std::array<const char*, 4> kPriorities{"<3>", "<4>", "<6>", "<7>"};  // sd-daemon.h SD_ERR ... SD_DEBUG

// Length of the valid UTF-8 sequence at text[i], or 0 when it is not one.
size_t utf8_length(std::string_view text, size_t i) {
  const auto c = static_cast<unsigned char>(text[i]);
  const size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 && c >= 0xc2 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 && c <= 0xf4 ? 4 : 0;
  if (n == 0 || i + n > text.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(text[i + k]) & 0xc0) != 0x80) return 0;
  }
  // No overlong forms, no UTF-16 surrogates, nothing past U+10FFFF (RFC 3629 section 4).
  const auto second = static_cast<unsigned char>(n > 1 ? text[i + 1] : 0);
  if ((c == 0xe0 && second < 0xa0) || (c == 0xed && second >= 0xa0) || (c == 0xf0 && second < 0x90) ||
      (c == 0xf4 && second >= 0x90)) {
    return 0;
  }
  return n;
}

// A JSON string body (also logfmt's quoted value): quotes, backslashes and control characters
// escaped, invalid UTF-8 as U+FFFD, so a shipper's parser always takes the line.
std::string escaped(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    const size_t n = utf8_length(text, i);
    if (n == 0) {
      out += "\\ufffd";
      ++i;
    } else if (c == '"' || c == '\\') {
      (out += '\\') += static_cast<char>(c);
      ++i;
    } else if (c < 0x20 || c == 0x7f) {
      out += c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : std::string("\\u00") + kHex[c >> 4] + kHex[c & 15];
      ++i;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string now_rfc3339() {
  timespec t{};
  ::clock_gettime(CLOCK_REALTIME, &t);
  tm utc{};
  ::gmtime_r(&t.tv_sec, &utc);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(buf + n, sizeof buf - n, ".%03ldZ", t.tv_nsec / 1'000'000);
  return buf;
}

bool is_stderr(const char* journal_stream) {
  unsigned long long dev = 0, ino = 0;
  struct stat st {};
  return journal_stream && std::sscanf(journal_stream, "%llu:%llu", &dev, &ino) == 2 && ::fstat(2, &st) == 0 &&
         st.st_dev == dev && st.st_ino == ino;
}

}  // namespace

void set_log_level(LogLevel level) { g_level = level; }

void set_log_format(LogFormat format, const char* journal_stream) {
  g_format = format;
  g_journal = is_stderr(journal_stream);
}

bool parse_log_format(std::string_view text, LogFormat& format) {
  if (text == "text") format = LogFormat::kText;
  else if (text == "logfmt") format = LogFormat::kLogfmt;
  else if (text == "json") format = LogFormat::kJson;
  else return false;
  return true;
}

std::string format_log_line(LogLevel level, std::string_view message, LogFormat format, bool journal,
                            std::string_view ts) {
  const auto i = static_cast<size_t>(level);
  std::string line = journal ? kPriorities[i] : "";
  switch (format) {
    case LogFormat::kText:  // one message, one line, whatever the message holds
      line += std::string("kvmprof-agent ") + kNames[i] + ": ";
      for (char c : message) line += c == '\n' ? "\\n" : c == '\r' ? "\\r" : std::string(1, c);
      break;
    case LogFormat::kLogfmt:
      line += "ts=" + std::string(ts) + " level=" + kNames[i] + " msg=\"" + escaped(message) + "\"";
      break;
    case LogFormat::kJson:
      line += "{\"ts\":\"" + std::string(ts) + "\",\"level\":\"" + kNames[i] + "\",\"msg\":\"" + escaped(message) + "\"}";
      break;
  }
  return line;
}

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
  const LogFormat format = g_format.load();
  std::string line = format_log_line(level, message, format, g_journal.load(),
                                     format == LogFormat::kText ? "" : now_rfc3339()) + '\n';
  static std::mutex mu;
  std::lock_guard lock(mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace kvmprof
