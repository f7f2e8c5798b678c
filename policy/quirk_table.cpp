#include "policy/quirk_table.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdint>
#include <charconv>
#include <set>
#include <stdexcept>

namespace kvmprof {
namespace {

struct Invalid {
  YAML::Mark mark;
  std::string message;
};

[[noreturn]] void fail(const YAML::Node& node, std::string message) { throw Invalid{node.Mark(), std::move(message)}; }

std::string text(const YAML::Node& node, const char* what) {
  if (!node || !node.IsScalar() || node.Scalar().empty()) fail(node, std::string("'") + what + "' must be a non-empty string");
  return node.Scalar();
}

// By value: the node is often a temporary (node["models"]) that a reference would outlive.
YAML::Node list(const YAML::Node& node, const char* what) {
  if (node && !node.IsSequence()) fail(node, std::string("'") + what + "' must be a list");
  return node;
}

uint64_t number(const YAML::Node& node, const char* what) {
  std::string s = text(node, what);
  std::string_view v = s;
  int base = 10;
  if (v.starts_with("0x")) {
    v.remove_prefix(2);
    base = 16;
  }
  uint64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out, base);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size()) fail(node, std::string("'") + what + "' must be a number");
  return out;
}

// CPUID family, model and stepping fit 32 bits (they are much smaller).
unsigned small_number(const YAML::Node& node, const char* what) {
  uint64_t n = number(node, what);
  if (n > UINT32_MAX) fail(node, std::string("'") + what + "' is out of range");
  return static_cast<unsigned>(n);
}

void check_keys(const YAML::Node& map, const std::set<std::string>& allowed, const char* where) {
  if (!map.IsMap()) fail(map, std::string("'") + where + "' must be a map");
  for (const auto& kv : map) {
    if (!allowed.contains(kv.first.Scalar())) {
      fail(kv.first, "unknown key '" + kv.first.Scalar() + "' in " + where);
    }
  }
}

QuirkMatch load_match(const YAML::Node& node) {
  check_keys(node, {"vendor", "family", "models", "stepping", "microcode_below", "flags", "kvm_param", "pmu"}, "match");
  QuirkMatch m;
  if (node["vendor"]) {
    std::string v = text(node["vendor"], "vendor");
    if (v != "Intel" && v != "AMD") fail(node["vendor"], "'vendor' must be Intel or AMD");
    m.vendor = v == "Intel" ? Vendor::kIntel : Vendor::kAmd;
  }
  if (node["family"]) m.family = small_number(node["family"], "family");
  for (const auto& model : list(node["models"], "models")) m.models.push_back(small_number(model, "models[]"));
  if (const auto& s = node["stepping"]) {
    if (!s.IsSequence() || s.size() != 2) fail(s, "'stepping' must be [min, max]");
    m.stepping = {small_number(s[0], "stepping"), small_number(s[1], "stepping")};
    if (m.stepping->first > m.stepping->second) fail(s, "'stepping' must be [min, max] with min <= max: it never applies");
  }
  if (node["microcode_below"]) {
    m.microcode_below = number(node["microcode_below"], "microcode_below");
    if (*m.microcode_below == 0) fail(node["microcode_below"], "'microcode_below: 0' never applies");
  }
  for (const auto& flag : list(node["flags"], "flags")) m.flags.push_back(text(flag, "flags[]"));
  if (const auto& params = node["kvm_param"]) {
    check_keys(params, {"enable_mediated_pmu", "enable_pmu", "sev"}, "kvm_param");
    for (const auto& kv : params) m.kvm_params[kv.first.Scalar()] = kv.second.as<bool>();
  }
  if (node["pmu"]) m.pmu = text(node["pmu"], "pmu");
  return m;
}

Quirk load_quirk(const YAML::Node& node, std::set<std::string>& ids) {
  check_keys(node, {"id", "effect", "match", "description", "source"}, "quirk");
  Quirk q{text(node["id"], "id"), text(node["effect"], "effect"), {}, text(node["description"], "description"),
          text(node["source"], "source")};
  if (!ids.insert(q.id).second) fail(node["id"], "duplicate quirk id '" + q.id + "'");
  const auto& effects = known_effects();
  if (std::find(effects.begin(), effects.end(), q.effect) == effects.end()) {
    fail(node["effect"], "unknown effect '" + q.effect + "'");
  }
  if (!node["match"]) fail(node, "quirk '" + q.id + "' needs a 'match' (use {} for every host)");
  q.match = load_match(node["match"]);
  return q;
}

std::optional<bool> kvm_param(const KvmParams& kvm, const std::string& name) {
  if (name == "enable_mediated_pmu") return kvm.enable_mediated_pmu;
  if (name == "enable_pmu") return kvm.enable_pmu;
  return kvm.sev;
}

}  // namespace

bool QuirkMatch::matches(const HostModel& host) const {
  const CpuId& cpu = host.cpu;
  if (vendor && *vendor != cpu.vendor) return false;
  if (family && *family != cpu.family) return false;
  if (!models.empty() && std::find(models.begin(), models.end(), cpu.model) == models.end()) return false;
  if (stepping && (cpu.stepping < stepping->first || cpu.stepping > stepping->second)) return false;
  if (microcode_below && (!cpu.microcode || *cpu.microcode >= *microcode_below)) return false;
  for (const auto& flag : flags) {
    if (!cpu.flags.contains(flag)) return false;
  }
  for (const auto& [name, want] : kvm_params) {
    if (kvm_param(host.kvm, name) != want) return false;
  }
  return !pmu || host.pmu(*pmu) != nullptr;
}

const Quirk* QuirkTable::find(std::string_view effect, const HostModel& host) const {
  for (const auto& q : quirks_) {
    if (q.effect == effect && q.match.matches(host)) return &q;
  }
  return nullptr;
}

const std::vector<std::string_view>& known_effects() {
  static const std::vector<std::string_view> effects{
      "precise_host_only", "precise_exclude_host_hazard", "ibs_no_exclude", "guest_bits_need_svm",
      "sev_ignores_guest_bits", "mediated_vpmu", "hybrid_pmus", "uncore_no_exclude", "software_no_split",
      "ladder_exclude_bits_einval", "ladder_precise_needs_exclude_guest", "pebs_no_isolation", "host_pebs_disables_guest_pebs",
      "software_sample_guest_tag"};
  return effects;
}

std::variant<QuirkTable, ConfigError> parse_quirk_table(std::string_view yaml, const std::string& file) {
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    check_keys(root, {"version", "quirks"}, "quirk table");
    if (text(root["version"], "version") != "1") fail(root["version"], "unsupported quirk table version");
    if (!root["quirks"].IsSequence()) fail(root["quirks"], "'quirks' must be a list");
    std::vector<Quirk> quirks;
    std::set<std::string> ids;
    for (const auto& node : root["quirks"]) quirks.push_back(load_quirk(node, ids));
    for (auto effect : known_effects()) {
      auto used = std::find_if(quirks.begin(), quirks.end(), [&](const Quirk& q) { return q.effect == effect; });
      if (used == quirks.end()) fail(root["quirks"], "no quirk with effect '" + std::string(effect) + "'");
    }
    return QuirkTable(std::move(quirks));
  } catch (const Invalid& e) {
    return ConfigError{file, std::max(e.mark.line, 0) + 1, std::max(e.mark.column, 0) + 1, e.message};
  } catch (const YAML::Exception& e) {
    return ConfigError{file, std::max(e.mark.line, 0) + 1, std::max(e.mark.column, 0) + 1, e.msg};
  }
}

const QuirkTable& builtin_quirks() {
  static const QuirkTable table = [] {
    auto parsed = parse_quirk_table(builtin_quirks_yaml(), "policy/quirks.yaml");
    if (auto* err = std::get_if<ConfigError>(&parsed)) throw std::logic_error(err->format());
    return std::get<QuirkTable>(std::move(parsed));
  }();
  return table;
}

}  // namespace kvmprof
