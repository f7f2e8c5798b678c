#include "policy/listen_address.h"

#include <arpa/inet.h>

#include <charconv>

namespace kvmprof {
namespace {

constexpr const char* kExample = " (e.g. :9477, 127.0.0.1:9477 or [::1]:9477)";

bool is_literal(int family, const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(family, host.c_str(), buf) == 1;
}

}  // namespace

std::string ListenAddress::text() const {
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::variant<ListenAddress, std::string> parse_listen(std::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return "'listen' must be [address]:port" + std::string(kExample);
  std::string_view host = text.substr(0, colon), port = text.substr(colon + 1);
  unsigned value = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || p != port.data() + port.size() || value > 65535) {
    return std::string("'listen' port must be a number from 0 to 65535");
  }
  ListenAddress out{std::string(host), static_cast<uint16_t>(value), false};
  if (host.starts_with('[')) {
    if (host.size() < 2 || !host.ends_with(']')) return "'listen' address " + std::string(host) + " lacks its closing ']'";
    out.host = std::string(host.substr(1, host.size() - 2));
    out.ipv6 = true;
    if (!is_literal(AF_INET6, out.host)) return "'listen' address [" + out.host + "] is not an IPv6 address";
    return out;
  }
  if (host.find(':') != std::string_view::npos) {
    return "'listen' IPv6 addresses go in brackets, e.g. [::1]:" + std::string(port);
  }
  if (host == "localhost") out.host = "127.0.0.1";
  if (!out.host.empty() && !is_literal(AF_INET, out.host)) {
    return "'listen' address '" + out.host + "' is not an IP address; give an IPv4 or [IPv6] literal, or " +
           "leave it empty for every address" + kExample;
  }
  return out;
}

}  // namespace kvmprof
