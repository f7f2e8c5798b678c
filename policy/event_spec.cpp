#include "policy/event_spec.h"

#include <linux/perf_event.h>

#include <charconv>

#include "policy/event_names.h"

namespace kvmprof {
namespace {

using ParseResult = std::variant<EventSpec, EventSpecError>;

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

size_t bad_char(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (!is_name_char(s[i])) return i;
  }
  return std::string_view::npos;
}

std::optional<uint64_t> parse_number(std::string_view s) {
  int base = 10;
  if (s.starts_with("0x") || s.starts_with("0X")) {
    s.remove_prefix(2);
    base = 16;
  }
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// The whole UTF-8 sequence that starts at s[i], so a message never quotes half a character.
std::string_view utf8_char_at(std::string_view s, size_t i) {
  size_t n = 1;
  while (i + n < s.size() && (static_cast<unsigned char>(s[i + n]) & 0xC0) == 0x80) ++n;
  return s.substr(i, n);
}

bool is_modifier_string(std::string_view s) {
  return !s.empty() && s.find_first_not_of("ukhGHIpP") == std::string_view::npos;
}

// A vendor name as libpfm4 spells them: upper case, digits, '_' and '.', e.g. INST_RETIRED.ANY_P.
bool is_vendor_name(std::string_view s) {
  bool upper = false;
  for (char c : s) {
    if (c >= 'a' && c <= 'z') return false;
    upper = upper || (c >= 'A' && c <= 'Z');
  }
  return upper && bad_char(s) == std::string_view::npos;
}

// The event part without modifiers: a name, a raw rNNNN, or a vendor name.
std::variant<EventSpec, EventSpecError> parse_plain(std::string_view name) {
  if (auto named = lookup_event_name(name)) {
    std::string canonical(named->canonical);
    if (named->type == PERF_TYPE_SOFTWARE) return EventSpec{canonical, SoftwareEvent{named->config}, {}};
    return EventSpec{canonical, CoreEvent{named->type, named->config}, {}};
  }
  if (name.size() > 1 && name[0] == 'r' && name.find_first_not_of("0123456789abcdefABCDEF", 1) == std::string_view::npos) {
    auto raw = parse_number("0x" + std::string(name.substr(1)));
    if (!raw) return EventSpecError{1, "raw event value does not fit in 64 bits"};
    return EventSpec{std::string(name), CoreEvent{PERF_TYPE_RAW, *raw}, {}};
  }
  if (is_vendor_name(name)) return EventSpec{std::string(name), NamedEvent{std::string(name)}, {}};
  if (size_t b = bad_char(name); b != std::string_view::npos) {
    return EventSpecError{b, "unexpected character in event name"};
  }
  return EventSpecError{0, "unknown event '" + std::string(name) + "'; known: software events (" +
                               std::string(software_event_list()) +
                               "), hardware events such as cycles or instructions, cache events "
                               "such as LLC-load-misses, raw rNNNN, pmu/event=0x..,umask=0x../, "
                               "vendor names such as INST_RETIRED.ANY_P, tracepoints as subsys:name"};
}

ParseResult parse_terms(std::string_view spec) {
  size_t open = spec.find('/'), close = spec.find('/', open + 1);
  if (close == std::string_view::npos) return EventSpecError{open, "PMU event needs a closing '/'"};
  std::string pmu(spec.substr(0, open));
  if (pmu.empty() || bad_char(pmu) != std::string_view::npos) return EventSpecError{0, "bad PMU name"};
  PmuTermsEvent event{pmu, {}};
  size_t i = open + 1;
  while (i < close) {
    size_t end = std::min(spec.find(',', i), close);
    std::string_view term = spec.substr(i, end - i);
    size_t eq = term.find('=');
    std::string_view key = term.substr(0, eq);
    if (key.empty() || bad_char(key) != std::string_view::npos) return EventSpecError{i, "bad PMU term"};
    std::optional<uint64_t> value = eq == std::string_view::npos ? 1 : parse_number(term.substr(eq + 1));
    if (!value) return EventSpecError{i + eq + 1, "PMU term value must be a number (decimal or 0x hex)"};
    event.terms.emplace_back(std::string(key), *value);
    i = end + 1;
  }
  if (event.terms.empty()) return EventSpecError{open + 1, "PMU event needs at least one term"};
  EventSpec out{std::string(spec.substr(0, close + 1)), event, {}};
  std::string_view mods = spec.substr(close + 1);
  size_t mods_at = close + 1;
  if (mods.starts_with(':')) {
    mods.remove_prefix(1);
    ++mods_at;
  }
  if (mods.empty()) return out;
  auto parsed = parse_modifiers(mods, mods_at);
  if (auto* err = std::get_if<EventSpecError>(&parsed)) return *err;
  out.mods = std::get<Modifiers>(parsed);
  out.text += ":" + std::string(mods);
  return out;
}

ParseResult parse_tracepoint(std::string_view spec, size_t colon) {
  std::string_view subsys = spec.substr(0, colon), name = spec.substr(colon + 1);
  if (name.empty()) return EventSpecError{colon + 1, "tracepoint needs a name after ':'"};
  if (size_t b = bad_char(subsys); b != std::string_view::npos) {
    return EventSpecError{b, "unexpected character in tracepoint subsystem"};
  }
  if (size_t b = bad_char(name); b != std::string_view::npos) {
    return EventSpecError{colon + 1 + b, "unexpected character in tracepoint name"};
  }
  return EventSpec{std::string(spec), TracepointEvent{std::string(subsys), std::string(name)}, {}};
}

}  // namespace

std::variant<Modifiers, EventSpecError> parse_modifiers(std::string_view text, size_t offset) {
  Modifiers m;
  bool levels_given = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == 'u' || c == 'k' || c == 'h') {
      if (!levels_given) m.exclude_user = m.exclude_kernel = m.exclude_hv = levels_given = true;
      (c == 'u' ? m.exclude_user : c == 'k' ? m.exclude_kernel : m.exclude_hv) = false;
    } else if (c == 'G' || c == 'H') {
      if (!m.guest_host_given) m.exclude_guest = m.exclude_host = m.guest_host_given = true;
      (c == 'G' ? m.exclude_guest : m.exclude_host) = false;
    } else if (c == 'I') {
      m.exclude_idle = true;
    } else if (c == 'p') {
      if (++m.precise > 3) return EventSpecError{offset + i, "at most 3 'p' (precise level 0-3)"};
    } else if (c == 'P') {
      m.precise_max = true;
    } else {
      return EventSpecError{offset + i, "unknown modifier '" + std::string(utf8_char_at(text, i)) +
                                            "' (known: u k h G H I p P)"};
    }
  }
  if (m.precise_max && m.precise > 0) return EventSpecError{offset, "use either p/pp/ppp or P, not both"};
  return m;
}

std::variant<EventSpec, EventSpecError> parse_event_spec(std::string_view spec) {
  if (spec.empty()) return EventSpecError{0, "empty event spec"};
  if (spec.find('/') != std::string_view::npos) return parse_terms(spec);
  size_t colon = spec.find(':');
  std::string_view name = spec.substr(0, colon);
  if (name.empty()) return EventSpecError{0, "event name missing before ':'"};
  if (colon != std::string_view::npos && !is_modifier_string(spec.substr(colon + 1))) {
    if (lookup_event_name(name) || spec.substr(colon + 1).empty()) {
      auto mods = parse_modifiers(spec.substr(colon + 1), colon + 1);  // names the bad modifier
      if (auto* err = std::get_if<EventSpecError>(&mods)) return *err;
    }
    return parse_tracepoint(spec, colon);
  }
  auto parsed = parse_plain(name);
  if (colon == std::string_view::npos || std::holds_alternative<EventSpecError>(parsed)) return parsed;
  auto mods = parse_modifiers(spec.substr(colon + 1), colon + 1);
  if (auto* err = std::get_if<EventSpecError>(&mods)) return *err;
  auto& out = std::get<EventSpec>(parsed);
  out.mods = std::get<Modifiers>(mods);
  out.text += std::string(spec.substr(colon));
  return out;
}


}  // namespace kvmprof
