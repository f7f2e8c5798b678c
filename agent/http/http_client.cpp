#include "agent/http/http_client.h"


#include <utility>  // before Asio: Boost 1.74 awaitable.hpp uses std::exchange unincluded
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace kvmprof {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

std::string loopback_for(const ListenAddress& listen) {
  if (listen.host.empty() || listen.host == "0.0.0.0") return "127.0.0.1";
  if (listen.host == "::") return "::1";
  return listen.host;
}

}  // namespace

Result<HttpReply> http_get(const ListenAddress& listen, const std::string& target, std::chrono::seconds timeout) {
  const std::string host = loopback_for(listen);
  const std::string where = (listen.ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(listen.port);
  try {
    asio::io_context io;
    beast::tcp_stream stream(io);
    stream.expires_after(timeout);
    stream.connect(asio::ip::tcp::endpoint(asio::ip::make_address(host), listen.port));
    http::request<http::empty_body> request{http::verb::get, target, 11};
    request.set(http::field::host, where);
    request.set(http::field::user_agent, "kvmprof-agent profile");
    http::write(stream, request);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(size_t{1} << 30);
    http::read(stream, buffer, parser);
    auto& response = parser.get();
    return HttpReply{response.result_int(), std::move(response.body()), std::string(response[http::field::retry_after])};
  } catch (const boost::system::system_error& e) {
    return Error{0, "GET http://" + where + target + ": " + e.code().message()};
  }
}
}  // namespace kvmprof
