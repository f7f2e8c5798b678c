#include "agent/http/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>

namespace kvmprof {
namespace {

namespace ssl = boost::asio::ssl;

// Why OpenSSL failed ("key values mismatch"), then its error queue is empty for the next call.
// The first error is the cause; the last only says which layer gave up ("PEM lib").
std::string openssl_error() {
  const char* reason = ERR_reason_error_string(ERR_peek_error());
  std::string text = reason ? reason : "unknown OpenSSL error";
  ERR_clear_error();
  return text == "no start line" ? "not PEM: no -----BEGIN line in it" : text;
}

// The toolkit's curve names (Go's) as OpenSSL's group names.
const std::map<std::string, std::string>& curve_groups() {
  static const std::map<std::string, std::string> groups{
      {"CurveP256", "P-256"}, {"CurveP384", "P-384"}, {"CurveP521", "P-521"}, {"X25519", "X25519"}};
  return groups;
}

// The cipher suites Go's crypto/tls offers and the toolkit accepts by name (tls.CipherSuites():
// the secure ones), TLS 1.2 and earlier. Go does not let TLS 1.3 suites be chosen, and neither
// does kvmprof: they are accepted and have no effect, as there.
const std::set<std::string>& go_cipher_suites() {
  static const std::set<std::string> names{
      "TLS_RSA_WITH_AES_128_CBC_SHA",           "TLS_RSA_WITH_AES_256_CBC_SHA",
      "TLS_RSA_WITH_AES_128_GCM_SHA256",        "TLS_RSA_WITH_AES_256_GCM_SHA384",
      "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",   "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
      "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",     "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
      "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",  "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
      "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",  "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
      "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"};
  return names;
}
const std::set<std::string> kTls13Suites{"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"};

// A key file with a passphrase: refused instead of OpenSSL asking on the terminal (a daemon
// has none; check-config would wait on stdin).
int no_passphrase(char*, int, int, void*) { return 0; }

// Accepts any client certificate: RequestClientCert and RequireAnyClientCert ask for one
// without verifying it, as Go does.
int accept_any(int, X509_STORE_CTX*) { return 1; }

class Builder {
 public:
  Builder(const TlsServerConfig& tls, const std::string& file) : tls_(tls), file_(file) {}

  std::variant<TlsContext, std::vector<ConfigError>> build(std::vector<std::string>& warnings) {
    auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
    SSL_CTX* ctx = context->native_handle();
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 (tls_.prefer_server_cipher_suites ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
    SSL_CTX_set_min_proto_version(ctx, tls_.min_version);
    SSL_CTX_set_max_proto_version(ctx, tls_.max_version);
    // Resumed sessions need it once client certificates are asked for (else OpenSSL fails them).
    static const unsigned char kSessionContext[] = "kvmprof-agent";
    SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
    load_certificate(ctx, warnings);
    set_ciphers(ctx);
    set_curves(ctx);
    set_client_auth(ctx);
    if (!errors_.empty()) return errors_;
    return context;
  }

 private:
  void error(const Located& at, std::string message) {
    errors_.push_back({file_, at.mark.line, at.mark.column, std::move(message)});
  }

  // The OS's reason a file cannot be read (OpenSSL's would be "system lib"), with the hint
  // for the usual one under the packaged unit.
  bool readable(const Located& file, const char* key) {
    if (FILE* f = std::fopen(file.value.c_str(), "r")) {
      std::fclose(f);
      return true;
    }
    const int err = errno;
    error(file, std::string("cannot read ") + key + " " + file.value + ": " + std::strerror(err) +
                    (err == EACCES ? " (the agent runs as its own user, e.g. kvmprof: chgrp kvmprof FILE; chmod g+r FILE)" : ""));
    return false;
  }

  void load_certificate(SSL_CTX* ctx, std::vector<std::string>& warnings) {
    if (!readable(tls_.cert_file, "cert_file") || !readable(tls_.key_file, "key_file")) return;
    if (SSL_CTX_use_certificate_chain_file(ctx, tls_.cert_file.value.c_str()) != 1) {
      return error(tls_.cert_file, "cannot load cert_file " + tls_.cert_file.value + ": " + openssl_error());
    }
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    if (SSL_CTX_use_PrivateKey_file(ctx, tls_.key_file.value.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      const std::string why = openssl_error();
      return error(tls_.key_file, "cannot load key_file " + tls_.key_file.value + ": " + why +
                                      (why == "key values mismatch" ? " (it is not the key of cert_file " + tls_.cert_file.value + ")"
                                       : " (it must be an unencrypted PEM private key; decrypt one with openssl pkey "
                                         "-in KEY -out KEY.plain)"));
    }
    const ASN1_TIME* not_after = X509_get0_notAfter(SSL_CTX_get0_certificate(ctx));
    time_t in_30_days = time(nullptr) + 30 * 86400;
    if (X509_cmp_current_time(not_after) < 0) {
      warnings.push_back("cert_file " + tls_.cert_file.value + " has expired: clients will refuse it; replace it and reload");
    } else if (X509_cmp_time(not_after, &in_30_days) < 0) {
      warnings.push_back("cert_file " + tls_.cert_file.value + " expires within 30 days; replace it and reload");
    }
  }

  // Go's names are IANA's; OpenSSL knows them as standard names.
  void set_ciphers(SSL_CTX* ctx) {
    std::map<std::string, std::string> openssl_names;
    STACK_OF(SSL_CIPHER)* ciphers = SSL_CTX_get_ciphers(ctx);
    for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); ++i) {
      const SSL_CIPHER* c = sk_SSL_CIPHER_value(ciphers, i);
      if (const char* iana = SSL_CIPHER_standard_name(c)) openssl_names[iana] = SSL_CIPHER_get_name(c);
    }
    std::string list;
    for (const auto& suite : tls_.cipher_suites) {
      if (kTls13Suites.contains(suite.value)) continue;
      auto it = openssl_names.find(suite.value);
      if (!go_cipher_suites().contains(suite.value)) {
        error(suite, "unknown or insecure cipher suite '" + suite.value + "' (Go's names, e.g. "
                     "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)");
      } else if (it == openssl_names.end()) {
        error(suite, "cipher suite '" + suite.value + "' is disabled in this host's OpenSSL");
      } else {
        list += (list.empty() ? "" : ":") + it->second;
      }
    }
    if (!list.empty() && SSL_CTX_set_cipher_list(ctx, list.c_str()) != 1) {
      error(tls_.cipher_suites.front(), "OpenSSL refuses the cipher suites: " + openssl_error());
    }
  }

  void set_curves(SSL_CTX* ctx) {
    std::string groups;
    for (const auto& curve : tls_.curve_preferences) {
      auto it = curve_groups().find(curve.value);
      if (it == curve_groups().end()) error(curve, "unknown curve '" + curve.value + "' (CurveP256, CurveP384, CurveP521 or X25519)");
      else groups += (groups.empty() ? "" : ":") + it->second;
    }
    if (!groups.empty() && SSL_CTX_set1_groups_list(ctx, groups.c_str()) != 1) {
      error(tls_.curve_preferences.front(), "OpenSSL refuses the curves: " + openssl_error());
    }
  }

  void set_client_auth(SSL_CTX* ctx) {
    switch (tls_.client_auth) {
      case ClientAuth::kNoClientCert: return SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
      case ClientAuth::kRequestClientCert: SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any); break;
      case ClientAuth::kRequireAnyClientCert:
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, accept_any);
        break;
      case ClientAuth::kVerifyClientCertIfGiven: SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr); break;
      case ClientAuth::kRequireAndVerifyClientCert:
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
        break;
    }
    const Located& ca = tls_.client_ca_file;
    if (ca.value.empty() || !readable(ca, "client_ca_file")) return;
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca.value.c_str());
    if (!names || SSL_CTX_load_verify_locations(ctx, ca.value.c_str(), nullptr) != 1) {
      if (names) sk_X509_NAME_pop_free(names, X509_NAME_free);
      return error(ca, "cannot load client_ca_file " + ca.value + ": " + openssl_error());
    }
    SSL_CTX_set_client_CA_list(ctx, names);  // takes ownership
  }

  const TlsServerConfig& tls_;
  const std::string& file_;
  std::vector<ConfigError> errors_;
};

}  // namespace

std::variant<TlsContext, std::vector<ConfigError>> make_tls_context(const TlsServerConfig& tls, const std::string& file,
                                                                   std::vector<std::string>& warnings) {
  return Builder(tls, file).build(warnings);
}

}  // namespace kvmprof
