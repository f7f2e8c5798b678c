#pragma once
// HttpServer: the agent's HTTP endpoint, Boost.Beast on its own Asio threads (never the
// collection loop). Built so that a scrape answers while hundreds of idle or hostile
// connections are open:
// - deadlines on every connection: the next request must start within idle_timeout and be
//   complete within request_timeout of its first byte; a response must be written within
//   write_timeout;
// - connections are capped per client address and in total; at a cap the oldest connection
//   that is waiting for a request is closed to make room, else the oldest of all (a fresh
//   scrape always gets in, also past clients that read their answers too slowly);
// - requests are bounded: headers up to max_header_bytes, no bodies, GET and HEAD only;
// - handlers only hand out prepared data (the last snapshot's rendered page);
// - TLS and basic auth from the web config wrap every path alike; a TLS handshake counts as
//   idle (first to go at a cap) and must finish within request_timeout; passwords are checked
//   (bcrypt) on a thread of their own, so a flood of guesses cannot stall scrapes.
// Pipelined requests are answered in order; HEAD gets GET's headers without the body.
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "agent/http/web_security.h"
#include "agent/system/result.h"
#include "policy/listen_address.h"

namespace kvmprof {

struct HttpRequest {
  std::string method;  // "GET" or "HEAD": other methods are answered 405 before a handler
  std::string path;    // the target without its query
  std::string query;   // the raw query after '?'
  bool accepts_gzip = false;
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::shared_ptr<const std::string> body;  // shared: a cached page is never copied per request
  bool gzipped = false;                     // body is gzip (Content-Encoding: gzip)
  std::vector<std::pair<std::string, std::string>> headers;  // more, e.g. Retry-After
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;
using HttpRoutes = std::map<std::string, HttpHandler>;  // by exact path

struct HttpLimits {
  std::chrono::milliseconds idle_timeout{30'000};     // keep-alive wait for the next request
  std::chrono::milliseconds request_timeout{10'000};  // first byte to complete headers
  std::chrono::milliseconds write_timeout{10'000};
  size_t max_connections = 512;
  size_t max_per_client = 64;
  size_t max_header_bytes = 8192;
  unsigned threads = 2;
};

class HttpServer {
 public:
  // Binds and serves; the error says why not (address in use, address not on this host, ...).
  static Result<std::unique_ptr<HttpServer>> start(const ListenAddress& listen, HttpRoutes routes, HttpLimits limits = {},
                                                   WebSecurityPtr web = plain_http());
  ~HttpServer();  // closes the listener and every connection, joins the threads
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // A reloaded web config: new requests are checked against its users and get its headers,
  // new connections get its TLS context (a connection keeps the certificate it started with).
  void set_web(WebSecurityPtr web);
  uint16_t port() const;
  // "http://[::]:9477" (https with TLS): where it listens, for the log.
  std::string url() const;
  size_t connections() const;

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Plain-text responses for handlers.
inline HttpResponse text_response(unsigned status, std::string text) {
  return HttpResponse{status, "text/plain; charset=utf-8", std::make_shared<const std::string>(std::move(text)), false, {}};
}

}  // namespace kvmprof
