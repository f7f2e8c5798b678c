#pragma once
// A blocking HTTP/1.1 client for tests: one request per connection, 5 s receive timeout.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <string>

#include "agent/system/fd.h"

namespace kvmprof::testing {

inline Fd connect_to(uint16_t port, bool ipv6 = false) {
  Fd fd(::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval tv{5, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (ipv6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    a->sin6_addr = in6addr_loopback;
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(*a);
  }
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) fd.reset();
  return fd;
}

inline void send_all(const Fd& fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd.get(), data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

// Everything the server sends until it closes the connection (or the 5 s timeout).
inline std::string read_until_closed(const Fd& fd) {
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd.get(), buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<size_t>(n));
  return out;
}

inline std::string http_exchange(uint16_t port, const std::string& request, bool ipv6 = false) {
  Fd fd = connect_to(port, ipv6);
  send_all(fd, request);
  return read_until_closed(fd);
}

inline std::string get_request(const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: t\r\n" + extra + "Connection: close\r\n\r\n";
}

// The body of GET `path`, "" when the answer is not 200.
inline std::string body_of(uint16_t port, const std::string& path) {
  std::string reply = http_exchange(port, get_request(path));
  if (!reply.starts_with("HTTP/1.1 200")) return "";
  return reply.substr(reply.find("\r\n\r\n") + 4);
}

}  // namespace kvmprof::testing
