#include "policy/web_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <set>

#include "policy/yaml_reader.h"

namespace kvmprof {
namespace {

struct NamedAuth {
  const char* name;
  ClientAuth auth;
};
// "RequireClientCert" is the toolkit's old name for RequireAnyClientCert (web/tls_config.go).
constexpr std::array<NamedAuth, 6> kClientAuths{{{"NoClientCert", ClientAuth::kNoClientCert},
                                                 {"RequestClientCert", ClientAuth::kRequestClientCert},
                                                 {"RequireAnyClientCert", ClientAuth::kRequireAnyClientCert},
                                                 {"RequireClientCert", ClientAuth::kRequireAnyClientCert},
                                                 {"VerifyClientCertIfGiven", ClientAuth::kVerifyClientCertIfGiven},
                                                 {"RequireAndVerifyClientCert", ClientAuth::kRequireAndVerifyClientCert}}};

std::optional<int> tls_version(std::string_view name) {
  if (name == "TLS10") return 0x0301;
  if (name == "TLS11") return 0x0302;
  if (name == "TLS12") return 0x0303;
  if (name == "TLS13") return 0x0304;
  return std::nullopt;
}

// The response headers the toolkit lets a web config set, with their allowed values (none
// listed: any), web/handler.go extraHTTPHeaders.
const std::map<std::string, std::vector<std::string>>& allowed_headers() {
  static const std::map<std::string, std::vector<std::string>> headers{
      {"Strict-Transport-Security", {}}, {"X-Content-Type-Options", {"nosniff"}}, {"X-Frame-Options", {"deny", "sameorigin"}},
      {"X-XSS-Protection", {}},          {"Content-Security-Policy", {}}};
  return headers;
}

bool has_control_characters(std::string_view text) {
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

class WebLoader : public YamlReader {
 public:
  using YamlReader::YamlReader;

  WebConfig load(const YAML::Node& root) {
    WebConfig config;
    config.file = file();
    if (root.IsNull()) return config;  // an empty file: plain HTTP, no auth
    if (!keys(root, {"tls_server_config", "http_server_config", "basic_auth_users"}, "web config")) return config;
    if (root["tls_server_config"]) config.tls = load_tls(root["tls_server_config"]);
    if (root["http_server_config"]) load_http(root["http_server_config"], config);
    if (root["basic_auth_users"]) load_users(root["basic_auth_users"], config);
    return config;
  }

 private:
  // A file name, relative to the web config's directory.
  Located path(const YAML::Node& node, const char* key) {
    auto text = scalar(node, key).value_or("");
    if (text.empty()) {
      error(node, std::string("'") + key + "' must name a file");
      return {};
    }
    return {resolve(text), mark_of(node)};
  }

  std::vector<Located> names(const YAML::Node& node, const char* key) {
    std::vector<Located> out;
    if (!node.IsSequence()) {
      error(node, std::string("'") + key + "' must be a list");
      return out;
    }
    for (const auto& item : node) {
      if (auto text = scalar(item, key)) out.push_back({*text, mark_of(item)});
    }
    return out;
  }

  std::optional<bool> boolean(const YAML::Node& node, const char* key) {
    auto text = scalar(node, key);
    if (text == "true" || text == "True") return true;
    if (text == "false" || text == "False") return false;
    if (text) error(node, std::string("'") + key + "' must be true or false");
    return std::nullopt;
  }

  int version(const YAML::Node& node, const char* key, int fallback) {
    auto text = scalar(node, key);
    if (auto v = text ? tls_version(*text) : std::nullopt) return *v;
    if (text) error(node, std::string("'") + key + "' must be TLS10, TLS11, TLS12 or TLS13");
    return fallback;
  }

  std::optional<TlsServerConfig> load_tls(const YAML::Node& node) {
    if (node.IsNull()) return std::nullopt;
    if (!keys(node, {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version",
                     "cipher_suites", "curve_preferences", "prefer_server_cipher_suites"},
              "tls_server_config")) {
      return std::nullopt;
    }
    // As the toolkit: TLS is on when a certificate, key, CA or client auth type is given.
    if (!node["cert_file"] && !node["key_file"] && !node["client_ca_file"] && !node["client_auth_type"]) return std::nullopt;
    TlsServerConfig tls;
    if (node["cert_file"]) tls.cert_file = path(node["cert_file"], "cert_file");
    else error(node, "tls_server_config needs 'cert_file', the server's certificate (PEM)");
    if (node["key_file"]) tls.key_file = path(node["key_file"], "key_file");
    else error(node, "tls_server_config needs 'key_file', the certificate's private key (PEM)");
    if (node["client_ca_file"]) tls.client_ca_file = path(node["client_ca_file"], "client_ca_file");
    if (node["client_auth_type"]) load_client_auth(node["client_auth_type"], tls);
    if (node["min_version"]) tls.min_version = version(node["min_version"], "min_version", tls.min_version);
    if (node["max_version"]) tls.max_version = version(node["max_version"], "max_version", tls.max_version);
    if (tls.min_version > tls.max_version) error(node, "min_version is above max_version");
    if (node["cipher_suites"]) tls.cipher_suites = names(node["cipher_suites"], "cipher_suites");
    if (node["curve_preferences"]) tls.curve_preferences = names(node["curve_preferences"], "curve_preferences");
    if (node["prefer_server_cipher_suites"]) {
      tls.prefer_server_cipher_suites = boolean(node["prefer_server_cipher_suites"], "prefer_server_cipher_suites").value_or(true);
    }
    check_client_ca(node, tls);
    return tls;
  }

  void load_client_auth(const YAML::Node& node, TlsServerConfig& tls) {
    auto text = scalar(node, "client_auth_type");
    for (const auto& named : kClientAuths) {
      if (text == named.name) return void(tls.client_auth = named.auth);
    }
    if (text) {
      error(node, "'client_auth_type' must be NoClientCert, RequestClientCert, RequireAnyClientCert, "
                  "VerifyClientCertIfGiven or RequireAndVerifyClientCert");
    }
  }

  // A CA without a policy that asks for client certificates does nothing (the toolkit refuses
  // it); verifying without a CA would trust whatever the system trusts, so kvmprof refuses it.
  void check_client_ca(const YAML::Node& node, const TlsServerConfig& tls) {
    const bool verifies = tls.client_auth == ClientAuth::kVerifyClientCertIfGiven ||
                          tls.client_auth == ClientAuth::kRequireAndVerifyClientCert;
    if (node["client_ca_file"] && tls.client_auth == ClientAuth::kNoClientCert) {
      error(node["client_ca_file"], "client_ca_file is given but client_auth_type is NoClientCert (the default); set "
                                    "client_auth_type: RequireAndVerifyClientCert to require client certificates");
    }
    if (verifies && !node["client_ca_file"]) {
      error(node["client_auth_type"], "verifying client certificates needs client_ca_file, the CA that signs them");
    }
  }

  void load_http(const YAML::Node& node, WebConfig& config) {
    if (node.IsNull() || !keys(node, {"http2", "headers"}, "http_server_config")) return;
    if (node["http2"]) boolean(node["http2"], "http2");  // accepted; kvmprof serves HTTP/1.1
    const YAML::Node headers = node["headers"];
    if (!headers || headers.IsNull()) return;
    std::set<std::string> names;
    for (const auto& [name, values] : allowed_headers()) names.insert(name);
    if (!keys(headers, names, "headers")) return;
    for (const auto& entry : headers) {
      auto name = entry.first.Scalar();
      auto value = scalar(entry.second, name);
      if (!value || !names.contains(name)) continue;
      const auto& allowed = allowed_headers().at(name);
      if (has_control_characters(*value)) {
        error(entry.second, "the value of " + name + " must not contain control characters");
      } else if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), *value) == allowed.end()) {
        error(entry.second, name + " must be " + (allowed.size() == 1 ? allowed[0] : allowed[0] + " or " + allowed[1]));
      } else {
        config.headers.emplace_back(name, *value);
      }
    }
  }

  void load_users(const YAML::Node& node, WebConfig& config) {
    if (node.IsNull()) return;
    if (!node.IsMap()) return error(node, "'basic_auth_users' must be a map of user: bcrypt hash");
    for (const auto& entry : node) {
      auto user = scalar(entry.first, "basic_auth_users");
      auto hash = scalar(entry.second, "basic_auth_users");
      if (!user || !hash) continue;
      if (user->empty() || user->find(':') != std::string::npos || has_control_characters(*user)) {
        error(entry.first, "a basic auth user name must be non-empty, without ':' or control characters");
      } else if (!is_bcrypt_hash(*hash)) {
        error(entry.second, "the password of user '" + *user + "' must be a bcrypt hash ($2b$10$ and 53 more "
                            "characters), e.g. from: htpasswd -nBC 10 \"\" | tr -d ':\\n'");
      } else if (!config.users.emplace(*user, *hash).second) {
        error(entry.first, "duplicate user '" + *user + "'");
      }
    }
  }
};

}  // namespace

std::vector<std::string> WebConfig::files() const {
  std::vector<std::string> out{file};
  if (tls) {
    for (const auto* f : {&tls->cert_file, &tls->key_file, &tls->client_ca_file}) {
      if (!f->value.empty()) out.push_back(f->value);
    }
  }
  return out;
}

bool is_bcrypt_hash(std::string_view hash) {
  // $2b$CC$ + 22 characters of salt + 31 of hash, cost CC from 04 to 31.
  if (hash.size() != 60 || hash[0] != '$' || hash[1] != '2' || hash[3] != '$' || hash[6] != '$') return false;
  if (hash[2] != 'a' && hash[2] != 'b' && hash[2] != 'y') return false;
  const int cost = (hash[4] - '0') * 10 + (hash[5] - '0');
  if (!std::isdigit(static_cast<unsigned char>(hash[4])) || !std::isdigit(static_cast<unsigned char>(hash[5])) || cost < 4 ||
      cost > 31) {
    return false;
  }
  for (char c : hash.substr(7)) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '/') return false;
  }
  return true;
}

WebConfigResult parse_web_config(std::string_view text, const std::string& file) {
  WebLoader loader(file);
  WebConfig config;
  auto errors = loader.read(text, [&](const YAML::Node& root) { config = loader.load(root); });
  if (errors.empty()) return config;
  return errors;
}

}  // namespace kvmprof
