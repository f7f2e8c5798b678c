#include "policy/policy_select.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <string>

namespace kvmprof {
namespace {

constexpr std::string_view kSpace = " \t\r\n";

std::string_view trim(std::string_view s) {
  size_t b = s.find_first_not_of(kSpace);
  return b == std::string_view::npos ? std::string_view() : s.substr(b, s.find_last_not_of(kSpace) - b + 1);
}

// A tag name without its namespace prefix: "k:level" -> "level".
std::string_view local_name(std::string_view tag) {
  size_t colon = tag.find(':');
  return colon == std::string_view::npos ? tag : tag.substr(colon + 1);
}

// Appends code point `cp` as UTF-8; false for one XML cannot hold.
bool append_utf8(std::string& out, unsigned long cp) {
  if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return true;
}

// An element's text with its references decoded: libvirt writes metadata with libxml2, which
// escapes & < > (and \r as &#13;). nullopt for a reference XML does not define.
std::optional<std::string> decode_text(std::string_view text) {
  static const std::pair<std::string_view, char> kNamed[] = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '&') {
      out += text[i];
      continue;
    }
    size_t semi = text.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) return std::nullopt;
    std::string_view ref = text.substr(i + 1, semi - i - 1);
    i = semi;
    auto named = std::find_if(std::begin(kNamed), std::end(kNamed), [&](const auto& n) { return n.first == ref; });
    if (named != std::end(kNamed)) {
      out += named->second;
      continue;
    }
    if (!ref.starts_with('#')) return std::nullopt;  // also "&;"
    const bool hex = ref.starts_with("#x");
    std::string_view digits = ref.substr(hex ? 2 : 1);
    unsigned long cp = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), cp, hex ? 16 : 10);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || !append_utf8(out, cp)) {
      return std::nullopt;
    }
  }
  return out;
}

// True when the element XML (libvirt's, so outside input) holds <key>value</key> (or <key/> for
// an empty value), with or without a namespace prefix or attributes, whitespace around the
// value ignored. One pass over the text: a text-only element's text ends at the next '<', so
// nothing is scanned twice, and no regex, whose recursion a large element could take past the
// stack.
bool xml_has(std::string_view xml, std::string_view key, std::string_view value) {
  for (size_t open = xml.find('<'); open != std::string_view::npos; open = xml.find('<', open + 1)) {
    size_t name_end = xml.find_first_of(" \t\r\n/>", open + 1);
    if (name_end == std::string_view::npos) return false;
    if (local_name(xml.substr(open + 1, name_end - open - 1)) != key) continue;
    size_t gt = xml.find('>', name_end);
    if (gt == std::string_view::npos) return false;
    if (xml[gt - 1] == '/') {
      if (value.empty()) return true;
      continue;
    }
    size_t close = xml.find('<', gt);
    if (close == std::string_view::npos) return false;
    if (xml.substr(close, 2) != "</") continue;  // a child element: not a text value
    size_t close_gt = xml.find('>', close);
    if (close_gt == std::string_view::npos) return false;
    if (local_name(trim(xml.substr(close + 2, close_gt - close - 2))) != key) continue;
    auto text = decode_text(xml.substr(gt + 1, close - gt - 1));
    if (text && trim(*text) == value) return true;
  }
  return false;
}

// Whether the pattern element at p[i] ('?', a [set] or a literal) matches c; `next` is where the
// element ends. A '[' without its ']' is a literal.
bool element_matches(std::string_view p, size_t i, char c, size_t& next) {
  next = i + 1;
  if (p[i] == '?') return true;
  size_t close = p[i] == '[' ? p.find(']', i + 2) : std::string_view::npos;
  if (close == std::string_view::npos) return p[i] == c;
  std::string_view set = p.substr(i + 1, close - i - 1);
  next = close + 1;
  bool negate = set.starts_with('!');
  if (negate) set.remove_prefix(1);
  bool in = false;
  for (size_t k = 0; k < set.size(); ++k) {
    if (k + 2 < set.size() && set[k + 1] == '-') {
      in = in || (c >= set[k] && c <= set[k + 2]);
      k += 2;
    } else {
      in = in || c == set[k];
    }
  }
  return in != negate;
}

}  // namespace

// Greedy with one backtrack point: the last '*' seen takes one more character on a mismatch.
bool glob_match(std::string_view pattern, std::string_view text) {
  size_t p = 0, t = 0, star = std::string_view::npos, star_text = 0;
  while (t < text.size()) {
    size_t next = 0;
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_text = t;
    } else if (p < pattern.size() && element_matches(pattern, p, text[t], next)) {
      p = next;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++star_text;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool selector_matches(const Selector& s, const DomainFacts& d) {
  if (s.domain && !glob_match(*s.domain, d.name)) return false;
  if (s.uuid && !std::equal(s.uuid->begin(), s.uuid->end(), d.uuid.begin(), d.uuid.end(),
                            [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
    return false;
  }
  if (s.title && *s.title != d.title) return false;
  if (s.metadata) {
    auto xml = d.metadata.find(s.metadata->uri);
    if (xml == d.metadata.end() || !xml_has(xml->second, s.metadata->key, s.metadata->value)) return false;
  }
  return true;
}

std::vector<std::string> metadata_uris(const std::vector<Policy>& policies) {
  std::vector<std::string> out;
  for (const auto& p : policies) {
    if (p.match.metadata && std::find(out.begin(), out.end(), p.match.metadata->uri) == out.end()) {
      out.push_back(p.match.metadata->uri);
    }
  }
  return out;
}

}  // namespace kvmprof
