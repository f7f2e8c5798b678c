#pragma once
// One fuzz input = the text of a quirk table (policy/quirks.yaml, compiled in: whoever edits it
// is the outside). fuzz_quirk_table_input parses it with parse_quirk_table and checks:
// - it is accepted, or refused with a problem that has the file, a line and a column from 1 and
//   a message;
// - an accepted table has only known effects and a quirk for each, unique ids that are not
//   empty, and a source for every quirk (README: "each entry has a match, an effect and a
//   source");
// - every condition written is kept as written: `models` and `flags` are lists and keep all
//   their entries, numbers keep their value (read again here from the YAML with yaml-cpp);
// - every quirk applies to the host its match describes (a quirk that can never apply would
//   silently switch a safety rule off), and find() then returns a quirk of its effect that
//   matches that host, this one or one before it.
// Used by quirk_table_fuzz.cpp; a unit test replays tests/fuzz/corpus/quirk_table/ through it.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>

#include "policy/quirk_table.h"
#include "tests/fuzz/fuzz_promise.h"

namespace kvmprof::testing {

// A number as the table writes it: decimal, or hex after "0x".
inline std::optional<uint64_t> quirk_yaml_number(const YAML::Node& node) {
  std::string_view s = node.Scalar();
  const int base = s.starts_with("0x") ? 16 : 10;
  if (base == 16) s.remove_prefix(2);
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// The match as written in the YAML, against what the table keeps of it.
inline void fuzz_quirk_conditions_kept(const YAML::Node& written, const QuirkMatch& m) {
  if (const YAML::Node models = written["models"]) {
    KVMPROF_FUZZ_PROMISE(models.IsSequence() && models.size() == m.models.size());
    for (size_t i = 0; i < m.models.size(); ++i)
      KVMPROF_FUZZ_PROMISE(quirk_yaml_number(models[i]) == m.models[i]);
  }
  if (const YAML::Node flags = written["flags"]) {
    KVMPROF_FUZZ_PROMISE(flags.IsSequence() && flags.size() == m.flags.size());
  }
  if (written["family"]) KVMPROF_FUZZ_PROMISE(quirk_yaml_number(written["family"]) == m.family);
  if (const YAML::Node stepping = written["stepping"]) {
    KVMPROF_FUZZ_PROMISE(quirk_yaml_number(stepping[0]) == m.stepping->first &&
                         quirk_yaml_number(stepping[1]) == m.stepping->second);
  }
  if (written["microcode_below"])
    KVMPROF_FUZZ_PROMISE(quirk_yaml_number(written["microcode_below"]) == m.microcode_below);
}

// The host a match describes: its vendor, family, first model, lowest stepping, a microcode
// just below the bound, its flags, KVM parameters and PMU.
inline HostModel quirk_host(const QuirkMatch& m) {
  HostModel host;
  if (m.vendor) host.cpu.vendor = *m.vendor;
  if (m.family) host.cpu.family = *m.family;
  if (!m.models.empty()) host.cpu.model = m.models.front();
  if (m.stepping) host.cpu.stepping = m.stepping->first;
  if (m.microcode_below) host.cpu.microcode = *m.microcode_below - 1;
  host.cpu.flags.insert(m.flags.begin(), m.flags.end());
  for (const auto& [name, value] : m.kvm_params) {
    (name == "enable_mediated_pmu" ? host.kvm.enable_mediated_pmu
     : name == "enable_pmu"        ? host.kvm.enable_pmu
                                   : host.kvm.sev) = value;
  }
  if (m.pmu) host.pmus.emplace_back().name = *m.pmu;
  return host;
}

inline void fuzz_quirk_table_input(const uint8_t* data, size_t size) {
  const std::string file = "policy/quirks.yaml";
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto parsed = parse_quirk_table(text, file);
  if (auto* err = std::get_if<ConfigError>(&parsed)) {
    KVMPROF_FUZZ_PROMISE(err->file == file && err->line >= 1 && err->column >= 1 &&
                         !err->message.empty());
    return;
  }
  const QuirkTable& table = std::get<QuirkTable>(parsed);
  const auto& quirks = table.quirks();
  const auto& effects = known_effects();
  for (auto effect : effects) {
    KVMPROF_FUZZ_PROMISE(std::any_of(quirks.begin(), quirks.end(),
                                     [&](const Quirk& q) { return q.effect == effect; }));
  }
  const YAML::Node written = YAML::Load(text)["quirks"];
  KVMPROF_FUZZ_PROMISE(written.size() == quirks.size());
  std::set<std::string> ids;
  for (size_t i = 0; i < quirks.size(); ++i) {
    const Quirk& q = quirks[i];
    KVMPROF_FUZZ_PROMISE(std::find(effects.begin(), effects.end(), q.effect) != effects.end());
    KVMPROF_FUZZ_PROMISE(!q.id.empty() && ids.insert(q.id).second && !q.source.empty());
    fuzz_quirk_conditions_kept(written[i]["match"], q.match);
    const HostModel host = quirk_host(q.match);
    KVMPROF_FUZZ_PROMISE(q.match.matches(host));
    const Quirk* found = table.find(q.effect, host);
    KVMPROF_FUZZ_PROMISE(found != nullptr && found <= &q && found->effect == q.effect &&
                         found->match.matches(host));
  }
}

}  // namespace kvmprof::testing
