#pragma once
// The `listen` setting ([address]:port), parsed one way for check-config, --listen and the
// HTTP server, so a value that passes validation is one the server can bind.
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace kvmprof {

struct ListenAddress {
  std::string host;  // an IP literal without brackets; "" = every address (IPv6 and IPv4)
  uint16_t port = 0;  // 0 = a free port picked at start (logged)
  bool ipv6 = false;  // host is an IPv6 literal

  // "[::1]:9477", "127.0.0.1:0", ":9477"
  std::string text() const;
};

// ":9477" (every address), "0.0.0.0:9477", "127.0.0.1:0", "[::]:9477", "[::1]:9477",
// "localhost:9477" (127.0.0.1). Host names other than localhost are refused: the agent does
// not resolve names at start. The error says what is wrong with the value.
std::variant<ListenAddress, std::string> parse_listen(std::string_view text);

}  // namespace kvmprof
