#pragma once
// One fuzz input = the bytes a client sends on a connection before it closes.
// fuzz_http_request_input reads them as http_server.cpp's Session does, with http_request.h's
// parser, buffer and limits and a stream in memory for the socket: a first read of up to kFirstRead
// bytes when the buffer is empty, then a request, answered by the daemon's routes (the profile
// pages parse the query), and the next while the client keeps the connection alive (pipelining).
// Checked:
// - a request that cannot be read is answered 400, 413 or 431 and the connection closes; only a
//   client that leaves between requests gets no answer;
// - a request read holds at most max_header_bytes of header, and a chunked request's trailer
//   (Beast adds it to the fields) at most the read buffer;
// - every request read takes bytes from the client (pipelining cannot loop without end);
// - GET and HEAD, and only they, become an HttpRequest: its path is the target up to the first
//   '?', its query the rest, accepts_gzip says whether Accept-Encoding names gzip;
// - route() answers from the path's handler, 404 for an unknown path, 500 when a handler throws.
// Used by http_request_fuzz.cpp; a unit test replays tests/fuzz/corpus/http_request/ through it.
#include <boost/asio/io_context.hpp>
#include <boost/beast/_experimental/test/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "agent/http/http_request.h"
#include "agent/http/query.h"
#include "tests/fuzz/fuzz_promise.h"

namespace kvmprof::testing {

// The daemon's paths (daemon.cpp start_http); the profile pages refuse a bad query with 400.
// One more path whose handler throws.
inline const HttpRoutes& fuzz_http_routes() {
  static const HttpRoutes routes = [] {
    HttpHandler page = [](const HttpRequest&) { return text_response(200, "page\n"); };
    HttpHandler profile = [](const HttpRequest& r) {
      auto query = parse_query(r.query);
      return query.ok() ? text_response(200, "profile\n")
                        : text_response(400, query.error().message() + "\n");
    };
    HttpHandler broken = [](const HttpRequest&) -> HttpResponse {
      throw std::runtime_error("broken");
    };
    return HttpRoutes{{"/metrics", page},
                      {"/", page},
                      {"/debug/pprof/profile", profile},
                      {"/debug/pprof/flamegraph", profile},
                      {"/broken", broken}};
  }();
  return routes;
}

inline void fuzz_http_request_answer(const HttpRequest& request) {
  const HttpResponse r = route(fuzz_http_routes(), request);
  KVMPROF_FUZZ_PROMISE(r.body != nullptr);
  const bool known = fuzz_http_routes().contains(request.path);
  const bool bad_query =
      request.path.starts_with("/debug/pprof/") && !parse_query(request.query).ok();
  KVMPROF_FUZZ_PROMISE(r.status == (!known                      ? 404u
                                    : request.path == "/broken" ? 500u
                                    : bad_query                 ? 400u
                                                                : 200u));
}

inline void fuzz_http_request_input(const uint8_t* data, size_t size) {
  namespace http = boost::beast::http;
  static boost::asio::io_context io;
  const HttpLimits limits;
  boost::beast::test::stream client(io, {reinterpret_cast<const char*>(data), size});
  client.close_remote();  // the client closes after its bytes
  boost::beast::flat_buffer buffer(request_buffer_bytes(limits));
  size_t taken = 0;  // bytes of the input the requests so far took
  for (;;) {
    boost::system::error_code ec;
    if (buffer.size() == 0) {  // else a pipelined request is already here
      buffer.commit(client.read_some(buffer.prepare(kFirstRead), ec));
      if (ec) return;  // the client left
    }
    RequestParser parser;
    limit_request(parser, limits);
    http::read(client, buffer, parser, ec);
    if (ec) {
      auto answer = read_error_response(ec, limits);
      KVMPROF_FUZZ_PROMISE(answer ? answer->status == 400 || answer->status == 413 ||
                                        answer->status == 431
                                  : ec == http::error::end_of_stream);
      return;  // answered (or not): the connection closes
    }
    const size_t now_taken = client.nread_bytes() - buffer.size();
    KVMPROF_FUZZ_PROMISE(now_taken > taken);
    taken = now_taken;
    const auto& req = parser.get();
    size_t fields = req.method_string().size() + req.target().size();
    for (const auto& field : req) fields += field.name_string().size() + field.value().size();
    KVMPROF_FUZZ_PROMISE(fields <= limits.max_header_bytes + request_buffer_bytes(limits));

    auto request = to_http_request(req);
    KVMPROF_FUZZ_PROMISE(request.has_value() ==
                         (req.method() == http::verb::get || req.method() == http::verb::head));
    if (!request) return;  // 405, and the connection closes
    const std::string target(req.target().data(), req.target().size());
    KVMPROF_FUZZ_PROMISE(request->method == std::string(req.method_string()));
    KVMPROF_FUZZ_PROMISE(request->path.find('?') == std::string::npos);
    KVMPROF_FUZZ_PROMISE(target == (target.find('?') == std::string::npos
                                        ? request->path
                                        : request->path + "?" + request->query));
    auto encodings = req[http::field::accept_encoding];
    KVMPROF_FUZZ_PROMISE(
        request->accepts_gzip ==
        (std::string(encodings.data(), encodings.size()).find("gzip") != std::string::npos));
    fuzz_http_request_answer(*request);
    if (!req.keep_alive()) return;
  }
}

}  // namespace kvmprof::testing
