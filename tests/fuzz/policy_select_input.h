#pragma once
// One fuzz input = a policy's selectors and what libvirt answers about a domain, one per line:
// the metadata key, its value, a domain glob, the domain's name, then the rest is the text of the
// domain's <metadata> element (libvirt's virDomainGetMetadata: the agent parses no other XML,
// and this one only with xml_has in policy/policy_select.cpp). fuzz_policy_select_input checks
// selector_matches against policy_select.h and the README:
// - the domain glob matches exactly as the glob written out again the simple way below (every
//   way through the pattern tried, no backtracking limit);
// - a `metadata: {uri, key, value}` selector matches the element as libvirt writes it (libxml2:
//   `&`, `<` and `>` escaped, an empty element as `<key/>`) when it holds <key>value</key>,
//   whatever the input's text before it in the element: for a key that is an XML name and a
//   value without control characters or spaces around it (the README ignores whitespace around
//   the value); on any other text and selector it returns without a crash.
// Used by policy_select_fuzz.cpp; a unit test replays tests/fuzz/corpus/policy_select/ through it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy_select.h"
#include "tests/fuzz/fuzz_promise.h"

namespace kvmprof::testing {

// The pattern's elements: '*', '?', a [set] up to the first ']' after its first member ("[]a]"
// holds ']'; a '[' without its ']' is a literal), or a literal.
inline std::vector<std::string_view> glob_elements(std::string_view p) {
  std::vector<std::string_view> out;
  for (size_t i = 0; i < p.size();) {
    size_t close = p[i] == '[' ? p.find(']', i + 2) : std::string_view::npos;
    size_t n = close == std::string_view::npos ? 1 : close - i + 1;
    out.push_back(p.substr(i, n));
    i += n;
  }
  return out;
}

// One element that is not '*' against one character: [abc], [a-z], [!a] for sets.
inline bool glob_element_matches(std::string_view e, char c) {
  if (e == "?") return true;
  if (e.size() == 1) return e[0] == c;
  std::string_view set = e.substr(1, e.size() - 2);
  const bool negate = set.starts_with('!');
  if (negate) set.remove_prefix(1);
  bool in = false;
  for (size_t k = 0; k < set.size(); ++k) {
    if (k + 2 < set.size() && set[k + 1] == '-') {
      in = in || (set[k] <= c && c <= set[k + 2]);
      k += 2;
    } else {
      in = in || set[k] == c;
    }
  }
  return in != negate;
}

// matched[j]: the elements so far match the text's first j characters.
inline bool reference_glob(std::string_view pattern, std::string_view text) {
  std::vector<char> matched(text.size() + 1, 0);
  matched[0] = 1;
  for (std::string_view e : glob_elements(pattern)) {
    std::vector<char> next(text.size() + 1, 0);
    for (size_t j = 0; j <= text.size(); ++j) {
      if (e == "*")
        next[j] = matched[j] || (j > 0 && next[j - 1]);
      else
        next[j] = j > 0 && matched[j - 1] && glob_element_matches(e, text[j - 1]);
    }
    matched = std::move(next);
  }
  return matched[text.size()];
}

inline bool select_xml_name(std::string_view s) {
  auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (s.empty() || !letter(s[0])) return false;
  for (char c : s) {
    if (!letter(c) && !(c >= '0' && c <= '9') && c != '-' && c != '.') return false;
  }
  return true;
}

inline bool select_plain_value(std::string_view v) {
  for (unsigned char c : v) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return !v.starts_with(' ') && !v.ends_with(' ');
}

// <prefix:key>value</prefix:key> as libxml2 writes it for libvirt.
inline std::string libvirt_element(std::string_view key, std::string_view value) {
  const std::string tag = "kvmprof:" + std::string(key);
  if (value.empty()) return "<" + tag + "/>";
  std::string text;
  for (char c : value)
    text += c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;" : std::string(1, c);
  return "<" + tag + ">" + text + "</" + tag + ">";
}

inline void fuzz_policy_select_input(const uint8_t* data, size_t size) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  auto line = [&rest] {
    std::string_view l = rest.substr(0, rest.find('\n'));
    rest.remove_prefix(std::min(rest.size(), l.size() + 1));
    return l;
  };
  const std::string_view key = line(), value = line(), glob = line(), name = line(), xml = rest;
  const std::string uri = "https://kvmprof.example/1";

  Selector by_name;
  by_name.domain = std::string(glob);
  const DomainFacts named{std::string(name), "", "", {}};
  // The simple way costs glob x name steps: only for what a domain name and a glob are like.
  if (glob.size() * name.size() <= size_t{1} << 16)
    KVMPROF_FUZZ_PROMISE(selector_matches(by_name, named) == reference_glob(glob, name));

  Selector by_metadata;
  by_metadata.metadata = Selector::Metadata{uri, std::string(key), std::string(value)};
  (void)selector_matches(by_metadata, DomainFacts{"vm", "", "", {{uri, std::string(xml)}}});
  if (!select_xml_name(key) || !select_plain_value(value)) return;
  const std::string element = "<kvmprof:profile xmlns:kvmprof=\"" + uri + "\">" + std::string(xml) +
                              "\n  " + libvirt_element(key, value) + "\n</kvmprof:profile>";
  KVMPROF_FUZZ_PROMISE(selector_matches(by_metadata, DomainFacts{"vm", "", "", {{uri, element}}}));
}

}  // namespace kvmprof::testing
