// The HTTP server over real sockets: IPv4 and IPv6, HEAD, pipelining, bad requests, and
// scrapes that answer while idle, slow and oversized clients hold connections.
#include "agent/http/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <thread>

#include "agent/http/connection_registry.h"
#include "agent/http/gzip.h"
#include "tests/support/gunzip.h"
#include "agent/system/fd.h"
#include "tests/support/http_client.h"

using namespace kvmprof;
using namespace kvmprof::testing;
using namespace std::chrono_literals;

namespace {

const std::string kBody = "kvmprof_up 1\n";

const auto kBigPage = std::make_shared<const std::string>(1 << 20, 'x');

HttpRoutes routes() {
  return {{"/big", [](const HttpRequest&) { return HttpResponse{200, "text/plain", kBigPage, false, {}}; }},
          {"/metrics", [](const HttpRequest& r) {
             if (r.accepts_gzip) return HttpResponse{200, "text/plain", std::make_shared<const std::string>(gzip(kBody)), true, {}};
             return text_response(200, kBody);
           }},
          {"/query", [](const HttpRequest& r) { return text_response(200, r.path + "|" + r.query); }}};
}

std::unique_ptr<HttpServer> serve(const char* listen, HttpLimits limits = {}) {
  auto server = HttpServer::start(std::get<ListenAddress>(parse_listen(listen)), routes(), limits);
  EXPECT_TRUE(server.ok()) << (server.ok() ? "" : server.error().message());
  return server.ok() ? std::move(*server) : nullptr;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST(HttpServer, ServesOnIpv4AndIpv6WithPortZero) {
  auto v4 = serve("127.0.0.1:0");
  auto v6 = serve("[::1]:0");
  ASSERT_TRUE(v4 && v6);
  EXPECT_NE(v4->port(), 0);
  EXPECT_EQ(v6->url(), "http://[::1]:" + std::to_string(v6->port()));
  for (auto [server, ipv6] : {std::pair{v4.get(), false}, std::pair{v6.get(), true}}) {
    std::string reply = http_exchange(server->port(), get_request("/metrics"), ipv6);
    EXPECT_TRUE(reply.starts_with("HTTP/1.1 200 OK\r\n")) << reply;
    EXPECT_TRUE(reply.ends_with("\r\n\r\n" + kBody)) << reply;
  }
}

TEST(HttpServer, EveryAddressTakesIpv4AndIpv6) {
  auto any = serve(":0");
  ASSERT_TRUE(any);
  EXPECT_NE(http_exchange(any->port(), get_request("/metrics")).find(kBody), std::string::npos);
  EXPECT_NE(http_exchange(any->port(), get_request("/metrics"), true).find(kBody), std::string::npos);
}

TEST(HttpServer, APortInUseSaysSo) {
  auto first = serve("127.0.0.1:0");
  ASSERT_TRUE(first);
  auto second = HttpServer::start(ListenAddress{"127.0.0.1", first->port(), false}, routes());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().err, EADDRINUSE);
}

TEST(HttpServer, HeadHasGetsHeadersWithoutTheBody) {
  auto server = serve("127.0.0.1:0");
  std::string reply = http_exchange(server->port(), "HEAD /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 200 OK\r\n")) << reply;
  EXPECT_NE(reply.find("Content-Length: " + std::to_string(kBody.size()) + "\r\n"), std::string::npos) << reply;
  EXPECT_TRUE(reply.ends_with("\r\n\r\n")) << reply;
}

TEST(HttpServer, PipelinedRequestsAreAnsweredInOrder) {
  auto server = serve("127.0.0.1:0");
  std::string reply = http_exchange(server->port(), "GET /query?a=1 HTTP/1.1\r\nHost: t\r\n\r\n"
                                               "GET /query?b=2 HTTP/1.1\r\nHost: t\r\n\r\n" + get_request("/query?c=3"));
  EXPECT_EQ(count(reply, "HTTP/1.1 200 OK"), 3u) << reply;
  size_t a = reply.find("/query|a=1"), b = reply.find("/query|b=2"), c = reply.find("/query|c=3");
  ASSERT_NE(c, std::string::npos) << reply;
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
}

TEST(HttpServer, RejectsUnknownPathsOtherMethodsBodiesAndHugeHeadersCleanly) {
  auto server = serve("127.0.0.1:0");
  EXPECT_TRUE(http_exchange(server->port(), get_request("/nope")).starts_with("HTTP/1.1 404 Not Found"));
  std::string post = http_exchange(server->port(), "POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
  EXPECT_TRUE(post.starts_with("HTTP/1.1 405 Method Not Allowed")) << post;
  EXPECT_NE(post.find("Allow: GET, HEAD\r\n"), std::string::npos);
  std::string body = http_exchange(server->port(), "GET /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_TRUE(body.starts_with("HTTP/1.1 413")) << body;
  std::string huge = http_exchange(server->port(), get_request("/metrics", "X-Big: " + std::string(20000, 'x') + "\r\n"));
  EXPECT_TRUE(huge.starts_with("HTTP/1.1 431")) << huge.substr(0, 100);
  std::string garbage = http_exchange(server->port(), "\x16\x03\x01 not http at all\r\n\r\n");
  EXPECT_TRUE(garbage.starts_with("HTTP/1.1 400")) << garbage;
}

TEST(HttpServer, GzipWhenTheClientAcceptsIt) {
  auto server = serve("127.0.0.1:0");
  std::string reply = http_exchange(server->port(), get_request("/metrics", "Accept-Encoding: gzip\r\n"));
  EXPECT_NE(reply.find("Content-Encoding: gzip\r\n"), std::string::npos);
  EXPECT_EQ(gunzip(reply.substr(reply.find("\r\n\r\n") + 4)), kBody);
}

TEST(HttpServer, SlowAndIdleClientsAreCutOffByTheirDeadlines) {
  HttpLimits limits;
  limits.idle_timeout = 300ms;
  limits.request_timeout = 300ms;
  auto server = serve("127.0.0.1:0", limits);
  Fd idle = connect_to(server->port());
  Fd slow = connect_to(server->port());
  auto start = std::chrono::steady_clock::now();
  for (char c : std::string("GET /metrics HTTP/1.1\r\n")) {  // one byte every 50 ms: never completes in time
    send_all(slow, std::string(1, c));
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(read_until_closed(slow), "");  // closed without an answer
  EXPECT_EQ(read_until_closed(idle), "");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST(HttpServer, AScrapeAnswersWhileHundredsOfIdleAndSlowConnectionsAreOpen) {
  HttpLimits limits;
  limits.max_connections = 100;
  limits.max_per_client = 50;
  auto server = serve("127.0.0.1:0", limits);
  std::vector<Fd> hostile;
  for (int i = 0; i < 300; ++i) {
    hostile.push_back(connect_to(server->port()));
    if (i % 2) send_all(hostile.back(), "GET /metrics HTTP/1.1\r\nX-Slow: ");  // a request that never ends
  }
  for (int i = 0; i < 20; ++i) {
    std::string reply = http_exchange(server->port(), get_request("/metrics"));
    ASSERT_TRUE(reply.ends_with(kBody)) << "scrape " << i << ": " << reply;
  }
  EXPECT_LE(server->connections(), limits.max_per_client);
}

TEST(HttpServer, AScrapeAnswersWhileClientsThatNeverReadHoldEveryConnection) {
  HttpLimits limits;
  limits.max_connections = 40;
  limits.max_per_client = 40;
  auto server = serve("127.0.0.1:0", limits);
  std::vector<Fd> stuck;
  for (int i = 0; i < 60; ++i) {  // each asks for 1 MiB, pipelined, and never reads: its answer stays unwritten
    stuck.push_back(connect_to(server->port()));
    send_all(stuck.back(), "GET /big HTTP/1.1\r\nHost: t\r\n\r\nGET /big HTTP/1.1\r\nHost: t\r\n\r\n");
  }
  std::this_thread::sleep_for(200ms);
  for (int i = 0; i < 10; ++i) {
    std::string reply = http_exchange(server->port(), get_request("/metrics"));
    ASSERT_TRUE(reply.ends_with(kBody)) << "scrape " << i;
  }
  EXPECT_LE(server->connections(), limits.max_connections);
}

TEST(ConnectionRegistry, AtACapTheOldestIdleConnectionMakesRoom) {
  ConnectionRegistry<int> registry(3, 2);
  auto a = std::make_shared<int>(1), b = std::make_shared<int>(2), c = std::make_shared<int>(3),
       d = std::make_shared<int>(4), e = std::make_shared<int>(5);
  EXPECT_EQ(registry.add(a, "10.0.0.1"), nullptr);
  EXPECT_EQ(registry.add(b, "10.0.0.1"), nullptr);
  registry.set_idle(a.get(), false);  // a is answering a request: never closed for room
  EXPECT_EQ(registry.add(c, "10.0.0.1"), b);  // per-client cap: b is the oldest idle of that client
  EXPECT_EQ(registry.add(d, "10.0.0.2"), nullptr);
  EXPECT_EQ(registry.size(), 3u);
  EXPECT_EQ(registry.add(e, "10.0.0.3"), c);  // total cap: c is the oldest idle overall
  registry.set_idle(d.get(), false);
  registry.set_idle(e.get(), false);
  auto f = std::make_shared<int>(6);
  EXPECT_EQ(registry.add(f, "10.0.0.4"), a);  // nobody idle: the oldest of all makes room
  registry.remove(d.get());
  EXPECT_EQ(registry.size(), 2u);
  registry.remove(b.get());  // already gone: nothing happens
  EXPECT_EQ(registry.size(), 2u);
}

// Basic auth wraps every path, including a 404; the password is checked on the hasher thread
// (two clients at once: the most one address may have checked at a time) and the web config's
// headers go on every answer.
TEST(HttpServer, BasicAuthGuardsEveryPathAndAddsTheHeaders) {
  // bcrypt (cost 4) of "correct horse", from Python's crypt.crypt (libxcrypt).
  const std::string hash = "$2b$04$pPC/Y4cfkl2CkpHArzmpeePf3zCnJ1EUYHZFgXuAK9fv2YdTpgaIO";
  auto web = std::make_shared<const WebSecurity>(
      WebSecurity{nullptr, {{"X-Frame-Options", "deny"}}, BasicAuth({{"alice", hash}}), {}, "test"});
  auto server = HttpServer::start(std::get<ListenAddress>(parse_listen("127.0.0.1:0")), routes(), {}, web);
  ASSERT_TRUE(server.ok());
  const uint16_t port = (*server)->port();
  auto request = [](const std::string& path, const std::string& auth) {
    return "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + (auth.empty() ? "" : "Authorization: " + auth + "\r\n") +
           "Connection: close\r\n\r\n";
  };
  const std::string good = "Basic YWxpY2U6Y29ycmVjdCBob3JzZQ==";  // alice:correct horse
  std::vector<std::thread> clients;
  std::vector<std::string> replies(2);
  for (size_t i = 0; i < replies.size(); ++i) {
    clients.emplace_back([&, i] { replies[i] = http_exchange(port, request("/metrics", i % 2 ? good : "Basic YTpi")); });
  }
  for (auto& c : clients) c.join();
  replies.push_back(http_exchange(port, request("/metrics", good)));  // remembered: no bcrypt
  for (size_t i = 0; i < replies.size(); ++i) {
    EXPECT_TRUE(replies[i].starts_with(i == 0 ? "HTTP/1.1 401" : "HTTP/1.1 200")) << replies[i];
    EXPECT_NE(replies[i].find("X-Frame-Options: deny\r\n"), std::string::npos) << replies[i];
  }
  EXPECT_TRUE(http_exchange(port, request("/nope", "")).starts_with("HTTP/1.1 401"));
  std::string denied = http_exchange(port, request("/metrics", ""));
  EXPECT_NE(denied.find("WWW-Authenticate: Basic realm=\"kvmprof-agent\", charset=\"UTF-8\"\r\n"), std::string::npos);
  EXPECT_TRUE(http_exchange(port, request("/nope", good)).starts_with("HTTP/1.1 404"));
}
