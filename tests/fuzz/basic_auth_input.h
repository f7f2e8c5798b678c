#pragma once
// One fuzz input = the value of an Authorization header. fuzz_basic_auth_input parses it with
// parse_basic_auth and checks basic_auth.h's promises: what it accepts is a user without ':'
// and credentials without NUL, and the same credentials encoded again ("Basic " + base64 of
// "user:password", with any case of "Basic") parse to the same pair. BasicAuth::cached() says
// false for every header parse_basic_auth refuses (no bcrypt for malformed input), and never
// true before verify() has accepted. Used by basic_auth_fuzz.cpp; a unit test replays
// tests/fuzz/corpus/basic_auth/ through it.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "agent/http/basic_auth.h"
#include "tests/fuzz/fuzz_promise.h"

namespace kvmprof::testing {

inline std::string fuzz_base64(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < in.size(); i += 3) {
    uint32_t n = uint32_t(uint8_t(in[i])) << 16;
    if (i + 1 < in.size()) n |= uint32_t(uint8_t(in[i + 1])) << 8;
    if (i + 2 < in.size()) n |= uint8_t(in[i + 2]);
    out += kAlphabet[n >> 18 & 63];
    out += kAlphabet[n >> 12 & 63];
    out += i + 1 < in.size() ? kAlphabet[n >> 6 & 63] : '=';
    out += i + 2 < in.size() ? kAlphabet[n & 63] : '=';
  }
  return out;
}

inline void fuzz_basic_auth_input(const uint8_t* data, size_t size) {
  std::string_view header(reinterpret_cast<const char*>(data), size);
  // bcrypt (cost 4) of "correct horse": verify() is never called here, so no hashing happens.
  static const BasicAuth auth(std::map<std::string, std::string>{{"alice", "$2b$04$pPC/Y4cfkl2CkpHArzmpeePf3zCnJ1EUYHZFgXuAK9fv2YdTpgaIO"}});
  auto parsed = parse_basic_auth(header);
  auto verdict = auth.cached(header);
  KVMPROF_FUZZ_PROMISE(!verdict || !*verdict);  // nothing was ever accepted
  if (!parsed) {
    KVMPROF_FUZZ_PROMISE(verdict == false);
    return;
  }
  const auto& [user, password] = *parsed;
  KVMPROF_FUZZ_PROMISE(user.find(':') == std::string::npos);
  KVMPROF_FUZZ_PROMISE(user.find('\0') == std::string::npos && password.find('\0') == std::string::npos);
  for (const char* scheme : {"Basic ", "basic ", "BASIC "}) {
    KVMPROF_FUZZ_PROMISE(parse_basic_auth(scheme + fuzz_base64(user + ":" + password)) == parsed);
  }
}

}  // namespace kvmprof::testing
