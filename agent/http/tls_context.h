#pragma once
// The server's TLS context from a web config's tls_server_config: it reads the certificate,
// key and client CA files now (so a reload re-reads rotated certificates) and maps the
// exporter toolkit's settings onto OpenSSL's. Problems are FILE:LINE:COLUMN at the setting.
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "policy/web_config.h"

namespace kvmprof {

using TlsContext = std::shared_ptr<boost::asio::ssl::context>;

// `warnings` gets what works but will not for long (a certificate that has expired or expires
// within 30 days).
std::variant<TlsContext, std::vector<ConfigError>> make_tls_context(const TlsServerConfig& tls, const std::string& file,
                                                                   std::vector<std::string>& warnings);

}  // namespace kvmprof
