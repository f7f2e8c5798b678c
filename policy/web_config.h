#pragma once
// The web config (--web.config.file, or `web_config:` in agent.yaml): TLS, extra response
// headers and basic auth, in the format of the Prometheus exporter toolkit, so one file serves
// node_exporter and kvmprof alike and `promtool check web-config` checks it:
//
//   tls_server_config: {cert_file, key_file, client_auth_type, client_ca_file, min_version,
//                       max_version, cipher_suites, curve_preferences, prefer_server_cipher_suites}
//   http_server_config: {http2, headers}
//   basic_auth_users: {USER: BCRYPT_HASH}
//
// Pure: it takes the file's text and name and checks everything but the files it names (the
// TLS context loads those). Relative paths are relative to the web config's directory.
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "policy/config_error.h"

namespace kvmprof {

// The exporter toolkit's client_auth_type values (Go's tls.ClientAuthType).
enum class ClientAuth { kNoClientCert, kRequestClientCert, kRequireAnyClientCert, kVerifyClientCertIfGiven, kRequireAndVerifyClientCert };

// A value from the file with where it is written, for errors found when it is used.
struct Located {
  std::string value;
  Mark mark;
};

struct TlsServerConfig {
  Located cert_file;  // PEM, the server's certificate (and its chain)
  Located key_file;   // PEM
  ClientAuth client_auth = ClientAuth::kNoClientCert;
  Located client_ca_file;  // PEM bundle; empty: none
  int min_version = 0x0303;  // TLS12, as the toolkit
  int max_version = 0x0304;  // TLS13
  std::vector<Located> cipher_suites;      // IANA names, as Go's; empty: OpenSSL's defaults
  std::vector<Located> curve_preferences;  // CurveP256, CurveP384, CurveP521, X25519
  bool prefer_server_cipher_suites = true;
};

struct WebConfig {
  std::string file;
  std::optional<TlsServerConfig> tls;  // none: plain HTTP
  std::vector<std::pair<std::string, std::string>> headers;  // added to every response
  std::map<std::string, std::string> users;  // basic auth: user -> bcrypt hash; empty: no auth

  // The files whose change is a reason to reload: this one, the certificate, key and CA.
  std::vector<std::string> files() const;
};

using WebConfigResult = std::variant<WebConfig, std::vector<ConfigError>>;

WebConfigResult parse_web_config(std::string_view text, const std::string& file);

// "$2b$10$" + 53 characters of bcrypt's base64 (also $2a$ and $2y$, as htpasswd -B writes).
bool is_bcrypt_hash(std::string_view hash);

}  // namespace kvmprof
