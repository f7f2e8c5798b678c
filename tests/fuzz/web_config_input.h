#pragma once
// One fuzz input = the text of a web config (--web.config.file). fuzz_web_config_input parses
// it with parse_web_config and checks web_config.h's promises: it is accepted, or refused with
// problems that each have a file, a line and a column from 1 and a message; what it accepts
// holds only bcrypt hashes, user names without ':' or control characters, the toolkit's headers
// with values free of control characters (no header injection), absolute paths for the files
// it names (relative ones joined to the file's directory) and min_version <= max_version.
// Used by web_config_fuzz.cpp; a unit test replays tests/fuzz/corpus/web_config/ through it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "policy/web_config.h"
#include "tests/fuzz/fuzz_promise.h"

namespace kvmprof::testing {

inline bool fuzz_no_control_characters(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

inline void fuzz_web_config_input(const uint8_t* data, size_t size) {
  const std::string file = "/etc/kvmprof/web-config.yml";
  auto parsed = parse_web_config(std::string_view(reinterpret_cast<const char*>(data), size), file);
  if (auto* errors = std::get_if<std::vector<ConfigError>>(&parsed)) {
    KVMPROF_FUZZ_PROMISE(!errors->empty());
    for (const auto& e : *errors) {
      KVMPROF_FUZZ_PROMISE(e.file == file && e.line >= 1 && e.column >= 1 && !e.message.empty());
    }
    return;
  }
  const auto& config = std::get<WebConfig>(parsed);
  for (const auto& [user, hash] : config.users) {
    KVMPROF_FUZZ_PROMISE(is_bcrypt_hash(hash));
    KVMPROF_FUZZ_PROMISE(!user.empty() && user.find(':') == std::string::npos && fuzz_no_control_characters(user));
  }
  for (const auto& [name, value] : config.headers) {
    KVMPROF_FUZZ_PROMISE(fuzz_no_control_characters(name) && fuzz_no_control_characters(value));
  }
  if (config.tls) {
    for (const auto& f : config.files()) KVMPROF_FUZZ_PROMISE(!f.empty() && f[0] == '/');
    KVMPROF_FUZZ_PROMISE(config.tls->min_version <= config.tls->max_version);
  }
}

}  // namespace kvmprof::testing
