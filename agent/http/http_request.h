#pragma once
// Reading a request, apart from the connection (http_server.cpp does the I/O and the deadlines):
// Beast's parser and the read buffer with the server's limits, the answer to a request that
// could not be read, the HttpRequest a handler sees and the route that answers it. No socket
// here, so tests/fuzz/http_request_input.h feeds it raw bytes.
#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include "agent/http/http_server.h"

namespace kvmprof {

// Requests have no body: one with a body is refused (unexpected_body).
using RequestParser = boost::beast::http::request_parser<boost::beast::http::empty_body>;

inline constexpr size_t kFirstRead = 1024;  // bytes asked for while waiting for a request to start

// The connection's read buffer: a whole header and one read, never more.
inline size_t request_buffer_bytes(const HttpLimits& limits) {
  return limits.max_header_bytes + kFirstRead;
}

// The parser of a connection's next request: headers up to max_header_bytes.
inline void limit_request(RequestParser& parser, const HttpLimits& limits) {
  parser.header_limit(static_cast<uint32_t>(limits.max_header_bytes));
}

// What a request that could not be read gets: 431, 413 or 400 (and the connection closes), or
// nullopt when the connection just closes (the client went, a deadline passed).
inline std::optional<HttpResponse> read_error_response(boost::system::error_code ec,
                                                       const HttpLimits& limits) {
  namespace http = boost::beast::http;
  if (ec == http::error::end_of_stream || ec == boost::beast::error::timeout ||
      ec == boost::asio::error::operation_aborted) {
    return std::nullopt;
  }
  if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
    return text_response(431, "request headers are larger than " +
                                  std::to_string(limits.max_header_bytes) + " bytes\n");
  }
  if (ec == http::error::unexpected_body) {
    return text_response(413, "request bodies are not accepted\n");
  }
  return text_response(400, "bad request: " + ec.message() + "\n");
}

// The request as handlers see it, or nullopt for a method other than GET and HEAD (405).
inline std::optional<HttpRequest> to_http_request(const RequestParser::value_type& req) {
  namespace http = boost::beast::http;
  if (req.method() != http::verb::get && req.method() != http::verb::head) return std::nullopt;
  std::string_view target(req.target().data(), req.target().size());
  size_t q = target.find('?');
  HttpRequest request{std::string(req.method_string()), std::string(target.substr(0, q)),
                      q == std::string_view::npos ? "" : std::string(target.substr(q + 1)), false};
  auto encodings = req[http::field::accept_encoding];
  request.accepts_gzip =
      std::string_view(encodings.data(), encodings.size()).find("gzip") != std::string_view::npos;
  return request;
}

// The answer of the route for request.path (exact): 404 without one, 500 when its handler throws.
inline HttpResponse route(const HttpRoutes& routes, const HttpRequest& request) {
  auto found = routes.find(request.path);
  if (found == routes.end()) return text_response(404, "not found: " + request.path + " (see /)\n");
  try {
    return found->second(request);
  } catch (const std::exception& e) {
    return text_response(500, std::string("internal error: ") + e.what() + "\n");
  }
}

}  // namespace kvmprof
