#include "agent/http/basic_auth.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <memory>

namespace kvmprof {
namespace {

constexpr size_t kMaxVerdicts = 4096;  // then the cache starts afresh: bounded under a flood of guesses

std::string sha256(std::string_view a, std::string_view b) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned size = 0;
  std::string input = std::string(a) + '\0' + std::string(b);  // NUL: no user name contains one
  EVP_Digest(input.data(), input.size(), digest.data(), &size, EVP_sha256(), nullptr);
  OPENSSL_cleanse(input.data(), input.size());
  return std::string(reinterpret_cast<const char*>(digest.data()), size);
}

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
  if (colon == std::string::npos) return std::nullopt;
  return std::pair{decoded->substr(0, colon), decoded->substr(colon + 1)};
}

BasicAuth::BasicAuth(std::map<std::string, std::string> users)
    : users_(std::move(users)), decoy_hash_(users_.empty() ? "" : users_.begin()->second) {}

std::optional<bool> BasicAuth::cached(std::string_view authorization) const {
  auto credentials = parse_basic_auth(authorization);
  if (!credentials) return false;
  std::lock_guard lock(verdicts_->mu);
  auto it = verdicts_->allowed.find(sha256(credentials->first, credentials->second));
  if (it == verdicts_->allowed.end()) return std::nullopt;
  return it->second;
}

bool BasicAuth::verify(std::string_view authorization) const {
  auto credentials = parse_basic_auth(authorization);
  if (!credentials) return false;
  auto user = users_.find(credentials->first);
  const bool known = user != users_.end();
  const bool allowed = bcrypt_matches(credentials->second, known ? user->second : decoy_hash_) && known;
  std::lock_guard lock(verdicts_->mu);
  if (verdicts_->allowed.size() >= kMaxVerdicts) verdicts_->allowed.clear();
  verdicts_->allowed[sha256(credentials->first, credentials->second)] = allowed;
  OPENSSL_cleanse(credentials->second.data(), credentials->second.size());
  return allowed;
}

}  // namespace kvmprof
