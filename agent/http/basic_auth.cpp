#include "agent/http/basic_auth.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <memory>
#include <stdexcept>

namespace kvmprof {
namespace {

// HMAC-SHA256 of user and password with a random key of this process.
std::string remembered(std::string_view user, std::string_view password) {
  static const std::array<unsigned char, 32> key = [] {
    std::array<unsigned char, 32> k{};
    if (RAND_bytes(k.data(), static_cast<int>(k.size())) != 1) throw std::runtime_error("no random bytes for the HMAC key");
    return k;
  }();
  std::string input = std::string(user) + '\0' + std::string(password);  // NUL: in neither (parse_basic_auth)
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(input.data()),
       input.size(), digest.data(), &size);
  OPENSSL_cleanse(input.data(), input.size());
  return std::string(reinterpret_cast<const char*>(digest.data()), size);
}

int bcrypt_cost(const std::string& hash) { return (hash[4] - '0') * 10 + (hash[5] - '0'); }  // "$2b$CC$..."

// Strict base64 (RFC 4648, with padding) as browsers and Go's client send it.
std::optional<std::string> decode_base64(std::string_view in) {
  if (in.empty() || in.size() % 4 != 0) return std::nullopt;
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
  };
  std::string out;
  for (size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    const int pad = last ? (in[i + 3] == '=') + (in[i + 2] == '=') : 0;
    int v[4];
    for (int k = 0; k < 4; ++k) {
      v[k] = k >= 4 - pad ? 0 : value(in[i + k]);
      if (v[k] < 0) return std::nullopt;
    }
    const uint32_t n = uint32_t(v[0]) << 18 | uint32_t(v[1]) << 12 | uint32_t(v[2]) << 6 | uint32_t(v[3]);
    out += static_cast<char>(n >> 16);
    if (pad < 2) out += static_cast<char>(n >> 8 & 0xff);
    if (pad < 1) out += static_cast<char>(n & 0xff);
  }
  return out;
}

// crypt(3) of `password` with the salt and cost of `hash`, compared with `hash` in constant time.
bool bcrypt_matches(const std::string& password, const std::string& hash) {
  auto data = std::make_unique<crypt_data>();
  const char* out = crypt_rn(password.c_str(), hash.c_str(), data.get(), sizeof(crypt_data));
  const bool match = out && std::string_view(out).size() == hash.size() && CRYPTO_memcmp(out, hash.data(), hash.size()) == 0;
  OPENSSL_cleanse(data.get(), sizeof(crypt_data));
  return match;
}

}  // namespace

std::optional<std::pair<std::string, std::string>> parse_basic_auth(std::string_view header) {
  constexpr std::string_view kScheme = "basic ";
  if (header.size() <= kScheme.size()) return std::nullopt;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return std::nullopt;
  }
  auto decoded = decode_base64(header.substr(kScheme.size()));
  size_t colon = decoded ? decoded->find(':') : std::string::npos;
  if (colon == std::string::npos || decoded->find('\0') != std::string::npos) return std::nullopt;
  return std::pair{decoded->substr(0, colon), decoded->substr(colon + 1)};
}

BasicAuth::BasicAuth(std::map<std::string, std::string> users, const BasicAuth* previous) : users_(std::move(users)) {
  for (const auto& [user, hash] : users_) {
    if (decoy_hash_.empty() || bcrypt_cost(hash) > bcrypt_cost(decoy_hash_)) decoy_hash_ = hash;
    if (!previous) continue;
    auto before = previous->users_.find(user);
    std::lock_guard lock(previous->accepted_->mu);
    auto accepted = previous->accepted_->by_user.find(user);
    if (before != previous->users_.end() && before->second == hash && accepted != previous->accepted_->by_user.end()) {
      accepted_->by_user.insert(*accepted);
    }
  }
}

std::optional<bool> BasicAuth::cached(std::string_view authorization) const {
  auto credentials = parse_basic_auth(authorization);
  if (!credentials) return false;
  std::lock_guard lock(accepted_->mu);
  auto it = accepted_->by_user.find(credentials->first);
  if (it != accepted_->by_user.end() && it->second == remembered(credentials->first, credentials->second)) return true;
  return std::nullopt;
}

bool BasicAuth::verify(std::string_view authorization) const {
  auto credentials = parse_basic_auth(authorization);
  if (!credentials) return false;
  auto user = users_.find(credentials->first);
  const bool known = user != users_.end();
  const bool allowed = bcrypt_matches(credentials->second, known ? user->second : decoy_hash_) && known;
  if (allowed) {
    std::lock_guard lock(accepted_->mu);
    accepted_->by_user[credentials->first] = remembered(credentials->first, credentials->second);
  }
  OPENSSL_cleanse(credentials->second.data(), credentials->second.size());
  return allowed;
}

}  // namespace kvmprof
