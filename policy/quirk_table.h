#pragma once
// The quirk table (policy/quirks.yaml): CPU, microcode, PMU and kernel facts that change what
// an event means or whether it is safe, each with its source. Loaded and validated at start.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "policy/agent_config.h"
#include "policy/host_model.h"

namespace kvmprof {

struct QuirkMatch {
  std::optional<Vendor> vendor;
  std::optional<unsigned> family;
  std::vector<unsigned> models;                        // any of; empty = every model
  std::optional<std::pair<unsigned, unsigned>> stepping;  // inclusive range
  std::optional<uint64_t> microcode_below;             // matches only a known, lower microcode
  std::vector<std::string> flags;                      // all must be present
  std::map<std::string, bool> kvm_params;              // enable_mediated_pmu, sev, enable_pmu
  std::optional<std::string> pmu;                      // must exist

  bool matches(const HostModel& host) const;
  // True for quirks about every host (kernel rules, uncore, software events).
  bool universal() const { return !vendor && !family && models.empty() && flags.empty() && kvm_params.empty() && !pmu; }
};

struct Quirk {
  std::string id;
  std::string effect;
  QuirkMatch match;
  std::string description;
  std::string source;
};

class QuirkTable {
 public:
  explicit QuirkTable(std::vector<Quirk> quirks) : quirks_(std::move(quirks)) {}
  // The first quirk with this effect that matches the host, or null.
  const Quirk* find(std::string_view effect, const HostModel& host) const;
  const std::vector<Quirk>& quirks() const { return quirks_; }

 private:
  std::vector<Quirk> quirks_;
};

// Effects the decision engine and the open ladder act on; the loader rejects any other.
const std::vector<std::string_view>& known_effects();

std::variant<QuirkTable, ConfigError> parse_quirk_table(std::string_view text, const std::string& file);

// The table shipped in policy/quirks.yaml, compiled into the binary.
std::string_view builtin_quirks_yaml();
// That table, parsed once; a broken shipped table is a bug and aborts with its location.
const QuirkTable& builtin_quirks();

}  // namespace kvmprof
