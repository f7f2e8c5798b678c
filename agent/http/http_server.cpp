#include "agent/http/http_server.h"

#include <utility>  // before Asio: Boost 1.74 awaitable.hpp uses std::exchange unincluded
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <fcntl.h>

#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "agent/http/connection_registry.h"
#include "agent/http/http_request.h"
#include "agent/system/fd.h"
#include "agent/system/log.h"

namespace kvmprof {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using boost::system::error_code;

namespace {

constexpr int kBacklog = 1024;
constexpr auto kAcceptRetry = std::chrono::milliseconds(50);  // after EMFILE and the like
// Passwords waiting for bcrypt, in all and per client address: beyond them a request gets 503
// at once instead of a place in the queue, so a flood of guesses cannot queue up minutes of
// hashing, and one client's guesses leave room for the others' checks.
constexpr size_t kMaxHashing = 64;
constexpr size_t kMaxHashingPerClient = 2;

std::string_view view(boost::beast::string_view s) { return {s.data(), s.size()}; }

HttpResponse unauthorized() {
  HttpResponse r = text_response(401, "Unauthorized: this agent needs basic auth (see its web config)\n");
  r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"kvmprof-agent\", charset=\"UTF-8\"");
  return r;
}

// Runs the server's handlers; one that throws is logged and the thread serves on.
void serve(net::io_context& io) {
  for (;;) {
    try {
      io.run();
      return;
    } catch (const std::exception& e) {
      log_error(std::string("internal error in the HTTP server, serving on: ") + e.what());
    }
  }
}

}  // namespace

// What the registry closes: a connection, plain or TLS.
class Connection {
 public:
  virtual ~Connection() = default;
  virtual void close() = 0;  // from any thread
};

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

struct HttpServer::Impl {
  Impl(HttpRoutes r, HttpLimits l, WebSecurityPtr w)
      : routes(std::move(r)), limits(l), registry(l.max_connections, l.max_per_client), web_(std::move(w)) {}

  HttpRoutes routes;
  HttpLimits limits;
  ConnectionRegistry<Connection> registry;  // before ioc: sessions unregister while ioc destroys them
  net::io_context ioc;
  net::thread_pool hasher{1};  // bcrypt, off the I/O threads; after ioc: destroyed (joined) first
  tcp::acceptor acceptor{ioc};
  tcp::endpoint local;  // where it listens: read once, before the threads start
  net::steady_timer accept_retry{ioc};
  // An fd held for the acceptor: when the process runs out (EMFILE: the collector took the rest),
  // it is given up so that one scrape still gets in, and taken again after the next accept.
  Fd spare = open_spare();
  std::vector<std::thread> threads;

  static Fd open_spare() { return Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC)); }

  error_code listen(const ListenAddress& where);
  void accept();
  WebSecurityPtr web() const {
    std::lock_guard lock(web_mu_);
    return web_;
  }
  void set_web(WebSecurityPtr w) {
    std::lock_guard lock(web_mu_);
    web_ = std::move(w);
  }
  // A password check may start for `client` (within the caps); counted until done_hashing().
  bool start_hashing(const std::string& client) {
    std::lock_guard lock(hashing_mu_);
    if (hashing_ >= kMaxHashing || hashing_by_client_[client] >= kMaxHashingPerClient) return false;
    ++hashing_;
    ++hashing_by_client_[client];
    return true;
  }
  void done_hashing(const std::string& client) {
    std::lock_guard lock(hashing_mu_);
    --hashing_;
    if (--hashing_by_client_[client] == 0) hashing_by_client_.erase(client);
  }

 private:
  mutable std::mutex web_mu_;
  WebSecurityPtr web_;  // each request is checked against the one current when it arrived
  std::mutex hashing_mu_;
  size_t hashing_ = 0;
  std::map<std::string, size_t> hashing_by_client_;
};

// One connection: (TLS handshake,) wait for a request, read it, check its credentials,
// answer, repeat while the client keeps it alive. Every step runs on the connection's strand.
template <class Stream>
class Session : public Connection, public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  template <class... StreamArgs>
  Session(HttpServer::Impl& server, StreamArgs&&... args)
      : stream_(std::forward<StreamArgs>(args)...), buffer_(request_buffer_bytes(server.limits)), server_(server) {}
  ~Session() override { server_.registry.remove(this); }

  void start() {
    error_code ec;
    auto peer = tcp().socket().remote_endpoint(ec);
    client_ = ec ? "" : peer.address().to_string();
    auto victim = server_.registry.add(this->shared_from_this(), client_);
    if (victim) victim->close();
    if (victim.get() == this) return;
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] { self->handshake(); });
  }

  void close() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] {
      error_code ignored;
      self->tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
      self->tcp().close();
    });
  }

 private:
  beast::tcp_stream& tcp() { return beast::get_lowest_layer(stream_); }

  // A handshake counts as idle (the first to go at a cap) and must end within request_timeout.
  void handshake() {
    if constexpr (kTls) {
      tcp().expires_after(server_.limits.request_timeout);
      stream_.async_handshake(net::ssl::stream_base::server, [self = this->shared_from_this()](error_code ec) {
        if (ec) return self->tcp().close();  // wrong CA, no client certificate, plain HTTP, a stall
        self->wait_for_request();
      });
    } else {
      wait_for_request();
    }
  }

  void wait_for_request() {
    server_.registry.set_idle(this, true);
    if (buffer_.size() > 0) return read_request();  // a pipelined request is already here
    tcp().expires_after(server_.limits.idle_timeout);
    stream_.async_read_some(buffer_.prepare(kFirstRead), [self = this->shared_from_this()](error_code ec, size_t n) {
      if (ec) return self->tcp().close();
      self->buffer_.commit(n);
      self->read_request();
    });
  }

  void read_request() {
    parser_.emplace();
    limit_request(*parser_, server_.limits);
    tcp().expires_after(server_.limits.request_timeout);
    http::async_read(stream_, buffer_, *parser_, [self = this->shared_from_this()](error_code ec, size_t) {
      self->on_request(ec);
    });
  }

  void on_request(error_code ec) {
    auto refused = ec ? read_error_response(ec, server_.limits) : std::nullopt;
    if (ec && !refused) return tcp().close();
    server_.registry.set_idle(this, false);
    if (refused) return send_error(std::move(*refused));
    respond(parser_->get());
  }

  void respond(const RequestParser::value_type& req) {
    const bool head = req.method() == http::verb::head;
    auto request = to_http_request(req);
    if (!request) return send_error(text_response(405, "only GET and HEAD are served\n"), true);
    auto web = server_.web();
    if (web->auth.enabled()) {
      auto authorization = view(req[http::field::authorization]);
      auto verdict = web->auth.cached(authorization);
      if (!verdict) return check_password(std::move(web), std::string(authorization), std::move(*request), head, req.keep_alive());
      if (!*verdict) return send(unauthorized(), head, req.keep_alive());
    }
    send(route(server_.routes, *request), head, req.keep_alive());
  }

  // bcrypt on the hasher thread; the answer continues on this connection's strand.
  void check_password(WebSecurityPtr web, std::string authorization, HttpRequest request, bool head, bool keep_alive) {
    if (!server_.start_hashing(client_)) {
      HttpResponse busy = text_response(503, "too many passwords are being checked; try again\n");
      busy.headers.emplace_back("Retry-After", "1");
      return send(std::move(busy), head, keep_alive);
    }
    net::post(server_.hasher, [self = this->shared_from_this(), web = std::move(web), authorization = std::move(authorization),
                               request = std::move(request), head, keep_alive]() mutable {
      const bool allowed = web->auth.verify(authorization);
      self->server_.done_hashing(self->client_);
      net::post(self->stream_.get_executor(), [self, allowed, request = std::move(request), head, keep_alive] {
        self->send(allowed ? route(self->server_.routes, request) : unauthorized(), head, keep_alive);
      });
    });
  }

  // The answer to a request that is not served; the connection closes after it.
  void send_error(HttpResponse r, bool allow = false) {
    allow_ = allow;
    send(std::move(r), false, false);
  }

  void send(HttpResponse r, bool head, bool keep_alive) {
    body_ = r.body ? r.body : std::make_shared<const std::string>();
    for (const auto& header : server_.web()->headers) r.headers.push_back(header);
    tcp().expires_after(server_.limits.write_timeout);
    auto done = [self = this->shared_from_this(), keep_alive](error_code ec, size_t) { self->on_written(ec, keep_alive); };
    if (head) {
      fill(head_.emplace(), r, keep_alive);
      http::async_write(stream_, *head_, std::move(done));
    } else {
      fill(full_.emplace(), r, keep_alive).body() = {body_->data(), body_->size()};
      http::async_write(stream_, *full_, std::move(done));
    }
  }

  // Status and headers; Content-Length is the body's also for HEAD, which sends no body.
  template <class Message>
  Message& fill(Message& m, const HttpResponse& r, bool keep_alive) {
    m.result(static_cast<http::status>(r.status));
    m.version(11);
    m.set(http::field::server, "kvmprof-agent");
    m.set(http::field::content_type, r.content_type);
    m.set(http::field::vary, "Accept-Encoding");
    if (r.gzipped) m.set(http::field::content_encoding, "gzip");
    if (allow_) m.set(http::field::allow, "GET, HEAD");
    for (const auto& [name, value] : r.headers) m.set(name, value);
    m.set(http::field::content_length, std::to_string(body_->size()));
    m.keep_alive(keep_alive);
    return m;
  }

  void on_written(error_code ec, bool keep_alive) {
    head_.reset();
    full_.reset();
    body_.reset();
    allow_ = false;
    if (ec || !keep_alive) {  // (TLS: without close_notify; the body's length is known)
      error_code ignored;
      tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
      return tcp().close();
    }
    wait_for_request();
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<RequestParser> parser_;
  std::shared_ptr<const std::string> body_;  // kept alive until written
  std::optional<http::response<http::empty_body>> head_;
  std::optional<http::response<http::span_body<const char>>> full_;
  bool allow_ = false;
  std::string client_;  // the peer's address: caps count per client
  HttpServer::Impl& server_;
};

error_code HttpServer::Impl::listen(const ListenAddress& where) {
  error_code ec;
  tcp::endpoint endpoint(tcp::v6(), where.port);
  if (!where.host.empty()) endpoint.address(net::ip::make_address(where.host, ec));
  if (ec) return ec;
  acceptor.open(endpoint.protocol(), ec);
  if (ec && where.host.empty()) {  // no IPv6 on this host: every IPv4 address instead
    endpoint = tcp::endpoint(tcp::v4(), where.port);
    acceptor.open(endpoint.protocol(), ec);
  }
  if (ec) return ec;
  if (endpoint.address().is_v6() && endpoint.address().is_unspecified()) {
    acceptor.set_option(net::ip::v6_only(false), ec);  // [::] also takes IPv4, as Go's listeners do
  }
  acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(kBacklog, ec);
  if (!ec) local = acceptor.local_endpoint(ec);
  return ec;
}

void HttpServer::Impl::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted) return;
    if ((ec == net::error::no_descriptors || ec.value() == ENFILE) && spare.valid()) {
      spare.reset();  // its number is free now: accept again at once
      return accept();
    }
    if (ec) {  // out of fds without a spare, ENOBUFS: try again shortly instead of spinning
      accept_retry.expires_after(kAcceptRetry);
      return accept_retry.async_wait([this](error_code e) { if (!e) accept(); });
    }
    if (!spare.valid()) spare = open_spare();
    if (auto w = web(); w->tls) {
      std::make_shared<Session<TlsStream>>(*this, std::move(socket), *w->tls)->start();
    } else {
      std::make_shared<Session<beast::tcp_stream>>(*this, std::move(socket))->start();
    }
    accept();
  });
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(const ListenAddress& listen, HttpRoutes routes, HttpLimits limits,
                                                     WebSecurityPtr web) {
  auto impl = std::make_unique<Impl>(std::move(routes), limits, std::move(web));
  if (error_code ec = impl->listen(listen)) return Error{ec.value(), "listen on " + listen.text()};
  impl->accept();
  for (unsigned i = 0; i < std::max(1u, limits.threads); ++i) impl->threads.emplace_back([io = &impl->ioc] { serve(*io); });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() {
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->hasher.stop();  // queued password checks are dropped,
  impl_->hasher.join();  // the one under way is waited for
}

void HttpServer::set_web(WebSecurityPtr web) { impl_->set_web(std::move(web)); }

uint16_t HttpServer::port() const { return impl_->local.port(); }

std::string HttpServer::url() const {
  auto address = impl_->local.address();
  return (impl_->web()->tls ? "https://" : "http://") + (address.is_v6() ? "[" + address.to_string() + "]" : address.to_string()) + ":" +
         std::to_string(port());
}

size_t HttpServer::connections() const { return impl_->registry.size(); }

}  // namespace kvmprof
