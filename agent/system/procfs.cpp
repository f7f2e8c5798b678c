#include "agent/system/procfs.h"

#include <charconv>

namespace kvmprof {
namespace {

std::vector<std::string_view> split_ws(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\n')) ++i;
    size_t j = i;
    while (j < text.size() && text[j] != ' ' && text[j] != '\n') ++j;
    if (j > i) out.push_back(text.substr(i, j - i));
    i = j;
  }
  return out;
}

std::optional<uint64_t> to_u64(std::string_view s) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

Result<TaskTicks> parse_task_stat(std::string_view text) {
  // "pid (comm) state ...": comm may hold spaces and parentheses, so split after the last ')'.
  size_t close = text.rfind(')');
  if (close == std::string_view::npos) return Error{0, "stat: no ')' after comm"};
  auto fields = split_ws(text.substr(close + 1));  // fields[0] is field 3 (state)
  auto field = [&](size_t n) { return n - 3 < fields.size() ? to_u64(fields[n - 3]) : std::nullopt; };
  auto utime = field(14), stime = field(15), guest = field(43);
  if (!utime || !stime || !guest) return Error{0, "stat: fields 14, 15 or 43 missing or not numbers"};
  return TaskTicks{*utime, *stime, *guest};
}

std::optional<char> parse_task_state(std::string_view text) {
  size_t close = text.rfind(')');
  if (close == std::string_view::npos || close + 2 >= text.size()) return std::nullopt;
  return text[close + 2];  // ") S ..."
}

Result<SchedStat> parse_schedstat(std::string_view text) {
  auto fields = split_ws(text);
  if (fields.size() < 3) return Error{0, "schedstat: expected 3 numbers"};
  auto run = to_u64(fields[0]), wait = to_u64(fields[1]), slices = to_u64(fields[2]);
  if (!run || !wait || !slices) return Error{0, "schedstat: not a number"};
  return SchedStat{*run, *wait, *slices};
}

std::vector<std::string> parse_cmdline(std::string_view text) {
  std::vector<std::string> args;
  size_t i = 0;
  while (i < text.size()) {
    size_t end = text.find('\0', i);
    if (end == std::string_view::npos) end = text.size();
    args.emplace_back(text.substr(i, end - i));
    i = end + 1;
  }
  return args;
}

std::optional<unsigned> vcpu_index_from_comm(std::string_view comm) {
  while (!comm.empty() && comm.back() == '\n') comm.remove_suffix(1);
  if (!comm.starts_with("CPU ")) return std::nullopt;
  comm.remove_prefix(4);
  unsigned index = 0;
  auto [p, ec] = std::from_chars(comm.data(), comm.data() + comm.size(), index);
  if (ec != std::errc() || p == comm.data()) return std::nullopt;
  std::string_view accel(p, comm.data() + comm.size() - p);
  if (accel.size() < 2 || accel[0] != '/') return std::nullopt;
  return index;
}

}  // namespace kvmprof
