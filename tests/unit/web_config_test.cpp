// The web config: the exporter toolkit's format, every problem at FILE:LINE:COLUMN, and the
// TLS context built from it (certificates read now).
#include "policy/web_config.h"

#include <gtest/gtest.h>

#include "agent/http/tls_context.h"

using namespace kvmprof;

namespace {

const std::string kTls = std::string(KVMPROF_SOURCE_DIR) + "/tests/fixtures/tls";
// bcrypt (cost 4) of "correct horse", from Python's crypt.crypt (libxcrypt).
const std::string kHash = "$2b$04$pPC/Y4cfkl2CkpHArzmpeePf3zCnJ1EUYHZFgXuAK9fv2YdTpgaIO";

WebConfig good(const std::string& yaml, const std::string& file = "/etc/kvmprof/web.yml") {
  auto parsed = parse_web_config(yaml, file);
  if (auto* errors = std::get_if<std::vector<ConfigError>>(&parsed)) {
    ADD_FAILURE() << errors->front().format();
    return {};
  }
  return std::get<WebConfig>(parsed);
}

// Every problem, formatted.
std::vector<std::string> problems(const std::string& yaml) {
  auto parsed = parse_web_config(yaml, "web.yml");
  std::vector<std::string> out;
  if (auto* errors = std::get_if<std::vector<ConfigError>>(&parsed)) {
    for (const auto& e : *errors) out.push_back(e.format());
  }
  return out;
}

std::vector<std::string> tls_problems(const std::string& yaml, std::vector<std::string>* warnings = nullptr) {
  WebConfig config = good(yaml, kTls + "/web.yml");
  std::vector<std::string> ignored;
  auto made = make_tls_context(config.tls.value(), config.file, warnings ? *warnings : ignored);
  std::vector<std::string> out;
  if (auto* errors = std::get_if<std::vector<ConfigError>>(&made)) {
    for (const auto& e : *errors) out.push_back(e.format());
  }
  return out;
}

}  // namespace

TEST(WebConfig, AnEmptyFileIsPlainHttpWithoutAuth) {
  WebConfig config = good("");
  EXPECT_FALSE(config.tls);
  EXPECT_TRUE(config.users.empty());
  EXPECT_TRUE(config.headers.empty());
  EXPECT_FALSE(good("tls_server_config: {}\nbasic_auth_users:\n").tls);
}

TEST(WebConfig, ReadsTheToolkitFormatWithPathsFromItsDirectory) {
  WebConfig config = good(
      "tls_server_config:\n"
      "  cert_file: certs/server.crt\n"
      "  key_file: /secure/server.key\n"
      "  client_auth_type: RequireAndVerifyClientCert\n"
      "  client_ca_file: ../ca.pem\n"
      "  min_version: TLS13\n"
      "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"
      "  curve_preferences: [X25519, CurveP256]\n"
      "  prefer_server_cipher_suites: false\n"
      "http_server_config:\n"
      "  http2: false\n"
      "  headers:\n"
      "    X-Content-Type-Options: nosniff\n"
      "    Strict-Transport-Security: max-age=31536000\n"
      "basic_auth_users:\n"
      "  prometheus: '" + kHash + "'\n");
  ASSERT_TRUE(config.tls);
  EXPECT_EQ(config.tls->cert_file.value, "/etc/kvmprof/certs/server.crt");
  EXPECT_EQ(config.tls->cert_file.mark.line, 2);
  EXPECT_EQ(config.tls->cert_file.mark.column, 14);
  EXPECT_EQ(config.tls->key_file.value, "/secure/server.key");
  EXPECT_EQ(config.tls->client_ca_file.value, "/etc/ca.pem");
  EXPECT_EQ(config.tls->client_auth, ClientAuth::kRequireAndVerifyClientCert);
  EXPECT_EQ(config.tls->min_version, 0x0304);
  EXPECT_EQ(config.tls->max_version, 0x0304);
  ASSERT_EQ(config.tls->curve_preferences.size(), 2u);
  EXPECT_EQ(config.tls->curve_preferences[1].value, "CurveP256");
  EXPECT_FALSE(config.tls->prefer_server_cipher_suites);
  ASSERT_EQ(config.headers.size(), 2u);
  EXPECT_EQ(config.headers[0], (std::pair<std::string, std::string>{"X-Content-Type-Options", "nosniff"}));
  EXPECT_EQ(config.users.at("prometheus"), kHash);
  EXPECT_EQ(config.files(), (std::vector<std::string>{"/etc/kvmprof/web.yml", "/etc/kvmprof/certs/server.crt",
                                                      "/secure/server.key", "/etc/ca.pem"}));
  EXPECT_EQ(good("tls_server_config: {cert_file: a, key_file: b, client_auth_type: RequireClientCert}\n").tls->client_auth,
            ClientAuth::kRequireAnyClientCert);  // the toolkit's old name
}

TEST(WebConfig, EveryProblemIsReportedWhereItIsWritten) {
  EXPECT_EQ(problems("tls_server_config:\n  cert_file: a.crt\n  keyfile: a.key\n"),
            (std::vector<std::string>{
                "web.yml:2:3: tls_server_config needs 'key_file', the certificate's private key (PEM)",
                "web.yml:3:3: unknown key 'keyfile' in tls_server_config (allowed: cert_file, cipher_suites, client_auth_type, "
                "client_ca_file, curve_preferences, key_file, max_version, min_version, prefer_server_cipher_suites)"}));
  EXPECT_EQ(problems("tls_server_config: {cert_file: a, key_file: b, client_auth_type: Sometimes}\n"),
            (std::vector<std::string>{"web.yml:1:66: 'client_auth_type' must be NoClientCert, RequestClientCert, "
                                      "RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"}));
  EXPECT_EQ(problems("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: ca.pem\n")[0],
            "web.yml:4:19: client_ca_file is given but client_auth_type is NoClientCert (the default); set "
            "client_auth_type: RequireAndVerifyClientCert to require client certificates");
  EXPECT_EQ(problems("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: VerifyClientCertIfGiven\n")[0],
            "web.yml:4:21: verifying client certificates needs client_ca_file, the CA that signs them");
  EXPECT_EQ(problems("tls_server_config: {cert_file: a, key_file: b, min_version: TLS14}\n")[0],
            "web.yml:1:61: 'min_version' must be TLS10, TLS11, TLS12 or TLS13");
  EXPECT_EQ(problems("tls_server_config: {cert_file: a, key_file: b, min_version: TLS13, max_version: TLS12}\n")[0],
            "web.yml:1:20: min_version is above max_version");
  EXPECT_EQ(problems("tls_server_config: {cert_file: '', key_file: b}\n")[0], "web.yml:1:32: 'cert_file' must name a file");
}

TEST(WebConfig, HeadersAreTheToolkitsWithTheirValues) {
  EXPECT_EQ(problems("http_server_config:\n  headers:\n    X-Frame-Options: allow\n")[0],
            "web.yml:3:22: X-Frame-Options must be deny or sameorigin");
  EXPECT_EQ(problems("http_server_config:\n  headers:\n    Set-Cookie: a\n")[0].substr(0, 46),
            "web.yml:3:5: unknown key 'Set-Cookie' in heade");
  EXPECT_EQ(problems("http_server_config:\n  headers:\n    Content-Security-Policy: \"a\\r\\nX-Injected: 1\"\n")[0],
            "web.yml:3:30: the value of Content-Security-Policy must not contain control characters");
}

TEST(WebConfig, UsersNeedBcryptHashes) {
  EXPECT_EQ(problems("basic_auth_users:\n  alice: secret\n")[0],
            "web.yml:2:10: the password of user 'alice' must be a bcrypt hash ($2b$10$ and 53 more characters), e.g. "
            "from: htpasswd -nBC 10 \"\" | tr -d ':\\n'");
  EXPECT_EQ(problems("basic_auth_users:\n  'a:b': '" + kHash + "'\n")[0],
            "web.yml:2:3: a basic auth user name must be non-empty, without ':' or control characters");
  EXPECT_EQ(problems("basic_auth_users: [alice]\n")[0], "web.yml:1:19: 'basic_auth_users' must be a map of user: bcrypt hash");
  EXPECT_EQ(problems("basic_auth_users:\n  a: '" + kHash + "'\n  a: '" + kHash + "'\n")[0], "web.yml:3:3: duplicate user 'a'");
}

TEST(WebConfig, RecognizesBcryptHashes) {
  EXPECT_TRUE(is_bcrypt_hash(kHash));
  EXPECT_TRUE(is_bcrypt_hash("$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG"));  // htpasswd -B
  EXPECT_FALSE(is_bcrypt_hash("$2b$03$pPC/Y4cfkl2CkpHArzmpeePf3zCnJ1EUYHZFgXuAK9fv2YdTpgaIO"));  // cost below 4
  EXPECT_FALSE(is_bcrypt_hash("$2b$04$pPC/Y4cfkl2CkpHArzmpeePf3zCnJ1EUYHZFgXuAK9fv2YdTpga"));    // short
  EXPECT_FALSE(is_bcrypt_hash("$6$salt$hash"));
  EXPECT_FALSE(is_bcrypt_hash("$2b$04$pPC/Y4cfkl2CkpHArzmpeePf3zCnJ1EUYHZFgXuAK9fv2YdTpga:O"));
}

TEST(TlsContext, LoadsTheCertificateAndMapsTheToolkitsNames) {
  EXPECT_EQ(tls_problems("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                         "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384]\n"
                         "  curve_preferences: [CurveP256, X25519]\n"),
            std::vector<std::string>{});
}

TEST(TlsContext, AnEncryptedKeyIsRefusedWithoutAskingForItsPassphrase) {
  auto problems = tls_problems("tls_server_config:\n  cert_file: server.crt\n  key_file: encrypted.key\n");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("/web.yml:3:13: cannot load key_file"), std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find("it must be an unencrypted PEM private key"), std::string::npos) << problems[0];
}

TEST(TlsContext, FileProblemsAreReportedAtTheSetting) {
  auto missing = tls_problems("tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n");
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_EQ(missing[0], kTls + "/web.yml:2:14: cannot read cert_file " + kTls + "/nope.crt: No such file or directory");
  EXPECT_EQ(tls_problems("tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n")[0].substr(kTls.size()),
            "/web.yml:3:13: cannot load key_file " + kTls + "/other.key: key values mismatch (it is not the key of "
            "cert_file " + kTls + "/server.crt)");
  EXPECT_EQ(tls_problems("tls_server_config:\n  cert_file: README.md\n  key_file: server.key\n")[0].substr(kTls.size()),
            "/web.yml:2:14: cannot load cert_file " + kTls + "/README.md: not PEM: no -----BEGIN line in it");  // was "PEM lib"
  EXPECT_EQ(tls_problems("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                         "  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA, TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA]\n"
                         "  curve_preferences: [CurveP224]\n"),
            (std::vector<std::string>{
                kTls + "/web.yml:4:19: unknown or insecure cipher suite 'TLS_RSA_WITH_RC4_128_SHA' (Go's names, e.g. "
                       "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)",
                kTls + "/web.yml:4:45: unknown or insecure cipher suite 'TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA' (Go's names, e.g. "
                       "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)",
                kTls + "/web.yml:5:23: unknown curve 'CurveP224' (CurveP256, CurveP384, CurveP521 or X25519)"}));
  EXPECT_EQ(tls_problems("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                         "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: nope.pem\n")[0]
                .substr(kTls.size(), 30),
            "/web.yml:5:19: cannot read cli");
}
