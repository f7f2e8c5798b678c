#pragma once
// One fuzz input = the query of a request URL ("seconds=30&domain=web%201"), as it reaches
// /debug/pprof/*. fuzz_query_input parses it with parse_query and checks it against query.h's
// contract, written out again below the simple way (split on '&' then on the first '=',
// %XX and '+' decoded, empty pairs skipped; a bad escape, a key twice or more than
// kMaxQueryKeys keys is an error); then the keys and values it returns, escaped again, must
// parse to the same map. Used by query_fuzz.cpp; a unit test can replay
// tests/fuzz/corpus/query/ through it.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "agent/http/query.h"
#include "tests/fuzz/fuzz_promise.h"

namespace kvmprof::testing {

inline std::optional<std::string> reference_unescape(std::string_view s) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  while (!s.empty()) {
    if (s[0] == '%') {
      if (s.size() < 3 || hex(s[1]) < 0 || hex(s[2]) < 0) return std::nullopt;
      out += static_cast<char>(hex(s[1]) << 4 | hex(s[2]));
      s.remove_prefix(3);
    } else {
      out += s[0] == '+' ? ' ' : s[0];
      s.remove_prefix(1);
    }
  }
  return out;
}

// std::nullopt for a query parse_query must refuse.
inline std::optional<std::map<std::string, std::string>> reference_query(std::string_view q) {
  std::map<std::string, std::string> out;
  size_t begin = 0;
  while (begin <= q.size()) {
    size_t amp = q.find('&', begin);
    if (amp == std::string_view::npos) amp = q.size();
    std::string_view pair = q.substr(begin, amp - begin);
    begin = amp + 1;
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    auto key = reference_unescape(pair.substr(0, eq));
    auto value = reference_unescape(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
    if (!key || !value || out.size() == kMaxQueryKeys || out.count(*key)) return std::nullopt;
    out[*key] = *value;
  }
  return out;
}

// Escaped as Go's url.QueryEscape does ("+" for a space), or with %20 for every space.
inline std::string escape_query_part(std::string_view s, bool plus_for_space) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += c;
    } else if (c == ' ' && plus_for_space) {
      out += '+';
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    }
  }
  return out;
}

inline void fuzz_query_input(const uint8_t* data, size_t size) {
  std::string_view query(reinterpret_cast<const char*>(data), size);
  auto parsed = parse_query(query);
  auto expected = reference_query(query);
  // Accepted exactly when the contract accepts it, with the same keys and values.
  KVMPROF_FUZZ_PROMISE(parsed.ok() == expected.has_value());
  if (!parsed.ok()) {
    KVMPROF_FUZZ_PROMISE(!parsed.error().message().empty());
    return;
  }
  KVMPROF_FUZZ_PROMISE(*parsed == *expected);
  KVMPROF_FUZZ_PROMISE(parsed->size() <= kMaxQueryKeys);
  // The keys and values returned, escaped again (either way for spaces), parse to the same map.
  for (bool plus : {true, false}) {
    std::string again;
    for (const auto& [key, value] : *parsed) {
      if (!again.empty()) again += '&';
      again += escape_query_part(key, plus) + "=" + escape_query_part(value, plus);
    }
    auto reparsed = parse_query(again);
    KVMPROF_FUZZ_PROMISE(reparsed.ok() && *reparsed == *parsed);
  }
}

}  // namespace kvmprof::testing
