#pragma once
// BasicAuth: the web config's basic_auth_users, checked as the exporter toolkit does. A
// password is checked against its bcrypt hash by the system's crypt library (libxcrypt) and
// the results are compared in constant time. An unknown user is checked against the costliest
// configured hash, so timing does not tell which users exist (users whose hashes have lower
// costs answer faster: give every user the same cost).
//
// bcrypt is slow on purpose (cost 10: tens of milliseconds), so the credentials that were
// accepted are remembered, per user, as an HMAC with a key of this process (never the password;
// a memory dump does not allow an offline search without the key): a scraper pays bcrypt once.
// Wrong passwords are not remembered, so guesses cannot push the scraper's verdict out. A
// reload keeps what was accepted for users whose hash did not change.
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace kvmprof {

class BasicAuth {
 public:
  // `previous`: the running config's, whose accepted credentials stay accepted for the users
  // whose hash is the same.
  explicit BasicAuth(std::map<std::string, std::string> users, const BasicAuth* previous = nullptr);

  bool enabled() const { return !users_.empty(); }
  // The verdict on an Authorization header when it needs no bcrypt: true for credentials
  // accepted before, false for a malformed or missing header; nullopt: verify() must hash.
  std::optional<bool> cached(std::string_view authorization) const;
  // Hashes (slow); remembers accepted credentials. From any thread.
  bool verify(std::string_view authorization) const;

 private:
  struct Accepted {
    std::mutex mu;
    std::map<std::string, std::string> by_user;  // user -> HMAC-SHA256(user, password) accepted
  };
  std::map<std::string, std::string> users_;
  std::string decoy_hash_;  // the costliest configured hash, checked for unknown users
  std::unique_ptr<Accepted> accepted_ = std::make_unique<Accepted>();
};

// "Basic dXNlcjpwYXNz" -> {"user", "pass"}; nullopt when it is not well-formed basic auth
// (a NUL byte included: crypt(3) would stop at it).
std::optional<std::pair<std::string, std::string>> parse_basic_auth(std::string_view header);

}  // namespace kvmprof
