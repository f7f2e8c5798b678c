#include "exporters/markup.h"

#include <cctype>

namespace kvmprof {
namespace {

constexpr char32_t kReplacement = 0xFFFD;

// The character at s[i], advancing i past it; malformed UTF-8 (overlong, surrogate, truncated,
// beyond U+10FFFF) gives U+FFFD for its first byte.
char32_t next_char(std::string_view s, size_t& i) {
  const auto lead = static_cast<unsigned char>(s[i++]);
  if (lead < 0x80) return lead;
  const int extra = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
  if (extra == 0 || i + extra > s.size()) return kReplacement;
  char32_t c = lead & (0x3F >> extra);
  for (int k = 0; k < extra; ++k) {
    const auto next = static_cast<unsigned char>(s[i + k]);
    if ((next & 0xC0) != 0x80) return kReplacement;
    c = c << 6 | (next & 0x3F);
  }
  static constexpr char32_t kSmallest[] = {0, 0x80, 0x800, 0x10000};
  if (c < kSmallest[extra] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return kReplacement;
  i += extra;
  return c;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
    return;
  }
  static constexpr char32_t kLead[] = {0, 0xC0, 0xE0, 0xF0};
  const int extra = c < 0x800 ? 1 : c < 0x10000 ? 2 : 3;
  out += static_cast<char>(kLead[extra] | (c >> (6 * extra)));
  for (int k = extra - 1; k >= 0; --k) out += static_cast<char>(0x80 | ((c >> (6 * k)) & 0x3F));
}

}  // namespace

// The characters of a name, with control characters (which XML 1.0 forbids or which would
// garble the picture) and the non-characters U+FFFE/U+FFFF replaced by U+FFFD.
std::u32string characters(std::string_view s) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    char32_t c = next_char(s, i);
    if (c < 0x20 || (c >= 0x7F && c < 0xA0) || c == 0xFFFE || c == 0xFFFF) c = kReplacement;
    out += c;
  }
  return out;
}


std::string xml_escape(std::u32string_view text) {
  std::string out;
  for (char32_t c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        append_utf8(out, c);
    }
  }
  return out;
}

std::string xml_escape(std::string_view text) { return xml_escape(characters(text)); }

std::string visible_text(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string shown;
  for (unsigned char c : text) {
    if (c == '\n') shown += "\\n";
    else if (c == '\t') shown += "\\t";
    else if (c == '\r') shown += "\\r";
    else if (c < 0x20 || c == 0x7f) (shown += "\\x") += std::string{kHex[c >> 4], kHex[c & 15]};
    else shown += static_cast<char>(c);
  }
  return xml_escape(shown);
}

std::string url_escape(std::string_view text) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace kvmprof
