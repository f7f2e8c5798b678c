#pragma once
// BasicAuth: the web config's basic_auth_users, checked as the exporter toolkit does. A
// password is checked against its bcrypt hash by the system's crypt library (libxcrypt) and
// the results are compared in constant time. An unknown user costs the same as a known one
// (a real hash is checked for nothing), so timing does not tell which users exist.
//
// bcrypt is slow on purpose (cost 10: tens of milliseconds), so verdicts are cached by a
// SHA-256 of user and password: a scraper that sends the same credentials every 15 s pays once.
// The cache is the object's: a reload builds a new BasicAuth and starts afresh.
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace kvmprof {

class BasicAuth {
 public:
  explicit BasicAuth(std::map<std::string, std::string> users);

  bool enabled() const { return !users_.empty(); }
  // The verdict on an Authorization header if it is known without bcrypt: a malformed or
  // missing header is refused at once; nullopt: verify() must hash.
  std::optional<bool> cached(std::string_view authorization) const;
  // Hashes (slow) and caches the verdict. From any thread.
  bool verify(std::string_view authorization) const;

 private:
  struct Verdicts {
    std::mutex mu;
    std::map<std::string, bool> allowed;  // SHA-256(user, password) -> allowed
  };
  std::map<std::string, std::string> users_;
  std::string decoy_hash_;  // a configured hash, checked for unknown users
  std::unique_ptr<Verdicts> verdicts_ = std::make_unique<Verdicts>();
};

// "Basic dXNlcjpwYXNz" -> {"user", "pass"}; nullopt when it is not well-formed basic auth.
std::optional<std::pair<std::string, std::string>> parse_basic_auth(std::string_view header);

}  // namespace kvmprof
