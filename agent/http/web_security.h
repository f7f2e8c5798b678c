#pragma once
// WebSecurity: what the web config asks of the HTTP server, ready to use: the TLS context
// (certificates loaded), the extra response headers and basic auth. Immutable once made; the
// server swaps the whole object on a reload, so a connection sees one config from start to end.
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "agent/http/basic_auth.h"
#include "agent/http/tls_context.h"

namespace kvmprof {

struct WebSecurity {
  TlsContext tls;  // null: plain HTTP
  std::vector<std::pair<std::string, std::string>> headers;
  BasicAuth auth{{}};
  std::vector<std::string> files;  // the web config and the files it names: a change means reload

  // "TLS (client certificates: RequireAndVerifyClientCert), basic auth for 2 users", for the log.
  std::string summary;
};

using WebSecurityPtr = std::shared_ptr<const WebSecurity>;

// Plain HTTP without auth: what runs without a web config.
WebSecurityPtr plain_http();

// Reads and checks the web config at `path` and the files it names; "" is plain HTTP without
// auth. `warnings` gets what works but needs attention (an expiring certificate, passwords
// without TLS). `previous`: the running one, whose accepted passwords stay accepted.
std::variant<WebSecurityPtr, std::vector<ConfigError>> load_web_security(const std::string& path,
                                                                         std::vector<std::string>& warnings,
                                                                         const WebSecurity* previous = nullptr);

}  // namespace kvmprof
