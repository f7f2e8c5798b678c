#pragma once
// One fuzz input = the text of a /proc file. fuzz_procfs_input hands it to every parser of
// agent/system/procfs.h and checks each against procfs.h's contract, written out again the
// simple way below:
// - parse_task_stat: accepted exactly when there is a ')' and the whitespace-separated fields
//   after the last one have fields 14, 15 and 43 as decimal numbers, with those values;
//   parse_task_state: the character after that ')' and a space, none without one;
// - parse_schedstat: accepted exactly when the first three fields are decimal numbers, with
//   those values;
// - parse_cmdline: the arguments hold no NUL and, each followed by a NUL, give back the text
//   (its last NUL may be missing, as when a process rewrote its argv);
// - vcpu_index_from_comm: an index exactly for "CPU <decimal that fits>/<accel>" with
//   trailing newlines.
// Then what the kernel writes must parse back: a stat line whose comm is the input's first
// bytes (up to 15, any but NUL as prctl(PR_SET_NAME) takes them: spaces, ')' and newlines
// too), with ticks and state from the input, gives those ticks and that state; a schedstat line
// its three numbers; a QEMU vCPU thread's comm (cut to 15 bytes as the kernel does) its index.
// Used by procfs_fuzz.cpp; a unit test replays tests/fuzz/corpus/procfs/ through it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/system/procfs.h"
#include "tests/fuzz/fuzz_promise.h"

namespace kvmprof::testing {

inline std::vector<std::string_view> procfs_fields(std::string_view text) {
  std::vector<std::string_view> out;
  size_t begin = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == ' ' || text[i] == '\n') {
      if (i > begin) out.push_back(text.substr(begin, i - begin));
      begin = i + 1;
    }
  }
  return out;
}

// Digits only, within 64 bits (leading zeros allowed).
inline std::optional<uint64_t> procfs_decimal(std::string_view s) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    const auto digit = static_cast<uint64_t>(c - '0');
    if (c < '0' || c > '9' || v > (UINT64_MAX - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  return v;
}

inline void fuzz_procfs_stat(std::string_view text) {
  auto ticks = parse_task_stat(text);
  size_t close = text.rfind(')');
  auto fields = close == std::string_view::npos ? std::vector<std::string_view>{}
                                                : procfs_fields(text.substr(close + 1));
  auto field = [&](size_t n) {
    return n - 3 < fields.size() ? procfs_decimal(fields[n - 3]) : std::nullopt;
  };
  auto utime = field(14), stime = field(15), guest = field(43);
  KVMPROF_FUZZ_PROMISE(ticks.ok() == (close != std::string_view::npos && utime && stime && guest));
  // The state: the character after ") ", none without one.
  const bool has_state = close != std::string_view::npos && close + 2 < text.size();
  KVMPROF_FUZZ_PROMISE(parse_task_state(text) ==
                       (has_state ? std::optional<char>(text[close + 2]) : std::nullopt));
  if (!ticks.ok()) {
    KVMPROF_FUZZ_PROMISE(!ticks.error().message().empty());
    return;
  }
  KVMPROF_FUZZ_PROMISE(ticks->utime == *utime && ticks->stime == *stime &&
                       ticks->guest_time == *guest);
}

inline void fuzz_procfs_schedstat(std::string_view text) {
  auto stat = parse_schedstat(text);
  auto fields = procfs_fields(text);
  std::optional<uint64_t> n[3];
  for (size_t i = 0; i < 3 && i < fields.size(); ++i) n[i] = procfs_decimal(fields[i]);
  KVMPROF_FUZZ_PROMISE(stat.ok() == (n[0] && n[1] && n[2]));
  if (!stat.ok()) return;
  KVMPROF_FUZZ_PROMISE(stat->run_ns == *n[0] && stat->wait_ns == *n[1] && stat->slices == *n[2]);
}

inline void fuzz_procfs_cmdline(std::string_view text) {
  std::string written;
  for (const auto& arg : parse_cmdline(text)) {
    KVMPROF_FUZZ_PROMISE(arg.find('\0') == std::string::npos);
    written += arg + '\0';
  }
  KVMPROF_FUZZ_PROMISE(written == text ||
                       (!text.ends_with('\0') && written == std::string(text) + '\0'));
}

inline void fuzz_procfs_comm(std::string_view text) {
  // Without its trailing newlines (npos + 1 = 0: nothing but newlines).
  std::string_view comm = text.substr(0, text.find_last_not_of('\n') + 1);
  std::optional<unsigned> expected;
  if (comm.starts_with("CPU ")) {
    size_t slash = comm.find_first_not_of("0123456789", 4);
    auto index =
        procfs_decimal(comm.substr(4, slash == std::string_view::npos ? slash : slash - 4));
    if (index && *index <= UINT32_MAX && slash != std::string_view::npos && comm[slash] == '/' &&
        slash + 1 < comm.size()) {
      expected = static_cast<unsigned>(*index);
    }
  }
  KVMPROF_FUZZ_PROMISE(vcpu_index_from_comm(text) == expected);
}

// What the kernel writes, with values from the input, parses back to them.
inline void fuzz_procfs_written(std::string_view input) {
  const uint64_t utime = fuzz_word(input, 0), stime = fuzz_word(input, 8),
                 guest = fuzz_word(input, 16);
  const char state = "RSDTtXZPIWK"[fuzz_word(input, 24) % 11];
  std::vector<std::string> stat(52, "0");
  stat[0] = "4242";
  stat[1] = "(" + std::string(input.substr(0, std::min(input.find('\0'), size_t{15}))) + ")";
  stat[2] = state;
  stat[13] = std::to_string(utime);
  stat[14] = std::to_string(stime);
  stat[42] = std::to_string(guest);
  std::string line;
  for (const auto& f : stat) line += (line.empty() ? "" : " ") + f;
  line += '\n';
  auto ticks = parse_task_stat(line);
  KVMPROF_FUZZ_PROMISE(ticks.ok() && ticks->utime == utime && ticks->stime == stime &&
                       ticks->guest_time == guest);
  KVMPROF_FUZZ_PROMISE(parse_task_state(line) == state);

  auto sched = parse_schedstat(std::to_string(utime) + " " + std::to_string(stime) + " " +
                               std::to_string(guest) + "\n");
  KVMPROF_FUZZ_PROMISE(sched.ok() && sched->run_ns == utime && sched->wait_ns == stime &&
                       sched->slices == guest);

  // "CPU <index>/KVM" cut to TASK_COMM_LEN - 1 bytes: up to 9 digits keep the '/' and a letter.
  const unsigned index = static_cast<unsigned>(utime % 1'000'000'000);
  std::string comm =
      ("CPU " + std::to_string(index) + (stime % 2 ? "/KVM" : "/TCG")).substr(0, 15) + "\n";
  KVMPROF_FUZZ_PROMISE(vcpu_index_from_comm(comm) == index);
}

inline void fuzz_procfs_input(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  fuzz_procfs_stat(text);
  fuzz_procfs_schedstat(text);
  fuzz_procfs_cmdline(text);
  fuzz_procfs_comm(text);
  fuzz_procfs_written(text);
}

}  // namespace kvmprof::testing
