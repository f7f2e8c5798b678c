#include "agent/http/web_security.h"

#include "agent/system/config_file.h"

namespace kvmprof {
namespace {

std::string_view client_auth_name(ClientAuth auth) {
  switch (auth) {
    case ClientAuth::kNoClientCert: return "NoClientCert";
    case ClientAuth::kRequestClientCert: return "RequestClientCert";
    case ClientAuth::kRequireAnyClientCert: return "RequireAnyClientCert";
    case ClientAuth::kVerifyClientCertIfGiven: return "VerifyClientCertIfGiven";
    case ClientAuth::kRequireAndVerifyClientCert: return "RequireAndVerifyClientCert";
  }
  return "?";
}

std::string summary_of(const WebConfig& config) {
  std::string tls = config.tls ? "TLS (client certificates: " + std::string(client_auth_name(config.tls->client_auth)) + ")"
                               : "plain HTTP";
  const size_t users = config.users.size();
  return tls + (users == 0 ? ", no auth" : ", basic auth for " + std::to_string(users) + (users == 1 ? " user" : " users"));
}

}  // namespace

WebSecurityPtr plain_http() {
  return std::make_shared<const WebSecurity>(WebSecurity{nullptr, {}, BasicAuth({}), {}, "plain HTTP, no auth"});
}

std::variant<WebSecurityPtr, std::vector<ConfigError>> load_web_security(const std::string& path,
                                                                         std::vector<std::string>& warnings,
                                                                         const WebSecurity* previous) {
  if (path.empty()) return plain_http();
  auto text = read_config_file(path);
  if (!text.ok()) return std::vector<ConfigError>{{path, 1, 1, "cannot read the web config: " + text.error().message()}};
  auto parsed = parse_web_config(*text, path);
  if (auto* errors = std::get_if<std::vector<ConfigError>>(&parsed)) return *errors;
  const auto& config = std::get<WebConfig>(parsed);
  TlsContext tls;
  if (config.tls) {
    auto made = make_tls_context(*config.tls, path, warnings);
    if (auto* errors = std::get_if<std::vector<ConfigError>>(&made)) return *errors;
    tls = std::get<TlsContext>(made);
  }
  if (!tls && !config.users.empty()) {
    warnings.push_back(path + ": basic auth without tls_server_config sends the passwords in clear text; add TLS");
  }
  return std::make_shared<const WebSecurity>(WebSecurity{tls, config.headers,
                                                         BasicAuth(config.users, previous ? &previous->auth : nullptr),
                                                         config.files(), summary_of(config)});
}

}  // namespace kvmprof
