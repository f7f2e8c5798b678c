#include "policy/policy_select.h"

#include <algorithm>
#include <regex>

namespace kvmprof {
namespace {

std::string regex_escape(const std::string& s) {
  static const std::regex special(R"([.^$|()\[\]{}*+?\\])");
  return std::regex_replace(s, special, R"(\$&)");
}

// True when the element XML holds <key>value</key>, with or without a namespace prefix.
bool xml_has(const std::string& xml, const std::string& key, const std::string& value) {
  std::regex pattern("<([A-Za-z_][\\w.-]*:)?" + regex_escape(key) + "(\\s[^>]*)?>\\s*" + regex_escape(value) +
                     "\\s*</([A-Za-z_][\\w.-]*:)?" + regex_escape(key) + "\\s*>");
  return std::regex_search(xml, pattern);
}

}  // namespace

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
