#include "policy/agent_config.h"

#include <yaml-cpp/yaml.h>

#include "policy/listen_address.h"
#include "policy/yaml_reader.h"

#include <algorithm>
#include <charconv>
#include <set>

namespace kvmprof {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kMinInterval{100};
constexpr milliseconds kMaxInterval{3'600'000};

// The ranges the README gives for each integer key.
struct Range {
  int64_t min;
  int64_t max;
};
constexpr Range kPriority{-1000, 1000};
constexpr Range kMaxCounters{0, 10'000'000};
constexpr Range kMaxSeries{0, 1'000'000'000};
constexpr Range kGroupSize{2, 32};  // at least a host/guest pair
constexpr Range kMaxSampledThreads{0, 10'000'000};
constexpr Range kMaxRingBytes{0, int64_t{1} << 40};
// kernel.perf_event_max_sample_rate is 100000 at most (kernel/events/core.c DEFAULT_MAX_SAMPLE_RATE).
constexpr Range kSampleHz{1, 100'000};
constexpr Range kSamplePeriod{1, int64_t{1} << 62};
constexpr Range kProfileSamples{1'000, 100'000'000};
constexpr Range kProfileStacks{100, 10'000'000};
// Reads one config, recording every problem and skipping only the part that is wrong.
class Loader : public YamlReader {
 public:
  using YamlReader::YamlReader;

  AgentConfig load(const YAML::Node& root);

 private:
  std::optional<milliseconds> duration(const YAML::Node& node, const std::string& key, milliseconds min);
  std::optional<int64_t> integer(const YAML::Node& node, const std::string& key, Range range);
  // map[key], when given, into `out`; `out` keeps its value when the key is wrong.
  void size(const YAML::Node& map, const char* key, Range range, size_t& out) {
    if (map[key]) out = static_cast<size_t>(integer(map[key], key, range).value_or(static_cast<int64_t>(out)));
  }
  void load_top(const YAML::Node& root, AgentConfig& config);
  void load_libvirt(const YAML::Node& node, AgentConfig& config);
  void load_limits(const YAML::Node& node, Limits& limits);
  void load_profiles(const YAML::Node& node, ProfileLimits& profiles);
  std::vector<PolicyEvent> load_events(const YAML::Node& node);
  std::optional<PolicyEvent> load_event(const YAML::Node& item);
  std::optional<PolicyEvent> event_from(const YAML::Node& spec_node, const YAML::Node* options);
  std::optional<SamplingConfig> load_sampling(const YAML::Node& node);
  std::optional<size_t> buffer_pages(const YAML::Node& node);
  bool apply_precise(const YAML::Node& node, EventSpec& spec);
  Selector load_selector(const YAML::Node& node);
  Policy load_policy(const YAML::Node& node, bool is_default);
  void check_shadowing(const std::vector<Policy>& policies);

};

std::optional<milliseconds> Loader::duration(const YAML::Node& node, const std::string& key, milliseconds min) {
  auto text = scalar(node, key);
  if (!text) return std::nullopt;
  milliseconds value = parse_duration(*text);
  if (value.count() == 0) {
    error(node, "'" + key + "' must be a duration such as 5s, 500ms or 1m");
    return std::nullopt;
  }
  if (value < min || value > kMaxInterval) {
    error(node, "'" + key + "' must be between " + std::to_string(min.count()) + "ms and 1h");
    return std::nullopt;
  }
  return value;
}

std::optional<int64_t> Loader::integer(const YAML::Node& node, const std::string& key, Range range) {
  auto text = scalar(node, key);
  if (!text) return std::nullopt;
  int64_t value = 0;
  auto [p, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (!text->empty() && ec == std::errc() && p == text->data() + text->size() && value >= range.min &&
      value <= range.max) {
    return value;
  }
  error(node, "'" + key + "' must be a whole number from " + std::to_string(range.min) + " to " +
                  std::to_string(range.max));
  return std::nullopt;
}

std::optional<PolicyEvent> Loader::load_event(const YAML::Node& item) {
  if (!item.IsMap()) return event_from(item, nullptr);
  if (!keys(item, {"event", "guest", "precise"}, "events[]")) return std::nullopt;
  if (!item["event"]) {
    error(item, "an event entry needs 'event: SPEC'");
    return std::nullopt;
  }
  return event_from(item["event"], &item);
}

// An event spec with the `guest:` and `precise:` keys of `options` (a map, or null).
std::optional<PolicyEvent> Loader::event_from(const YAML::Node& spec_node, const YAML::Node* options) {
  const YAML::Node guest_node = options ? (*options)["guest"] : YAML::Node();
  const YAML::Node precise_node = options ? (*options)["precise"] : YAML::Node();
  GuestMode guest = GuestMode::kAuto;
  if (options && guest_node) {
    auto mode = scalar(guest_node, "guest");
    auto parsed = mode ? parse_guest_mode(*mode) : std::nullopt;
    if (mode && !parsed) error(guest_node, "'guest' must be auto, include, exclude or split");
    if (!parsed) return std::nullopt;
    guest = *parsed;
  }
  auto text = scalar(spec_node, "event");
  if (!text) return std::nullopt;
  auto parsed = parse_event_spec(*text);
  if (auto* err = std::get_if<EventSpecError>(&parsed)) {
    Mark m = mark_of(spec_node);
    m.column += static_cast<int>(err->column) + (spec_node.Tag() == "!" ? 1 : 0);
    error_at(m, err->message);
    return std::nullopt;
  }
  auto spec = std::get<EventSpec>(std::move(parsed));
  if (options && precise_node && !apply_precise(precise_node, spec)) return std::nullopt;
  if (spec.mods.guest_host_given && guest != GuestMode::kAuto) {
    error(guest_node, "event '" + spec.text + "' already says G/H; drop 'guest' or the modifier");
    return std::nullopt;
  }
  return PolicyEvent{std::move(spec), guest, mark_of(spec_node)};
}

std::optional<size_t> Loader::buffer_pages(const YAML::Node& node) {
  auto text = scalar(node, "buffer");
  if (!text) return std::nullopt;
  if (auto pages = parse_buffer_pages(*text)) return pages;
  error(node, "'buffer' must be a power of two of 4 KiB pages from 1 to " + std::to_string(kMaxRingPages) +
                  ", as pages (16) or bytes (64KiB, 1MiB)");
  return std::nullopt;
}

std::optional<SamplingConfig> Loader::load_sampling(const YAML::Node& node) {
  if (!keys(node, {"event", "guest", "precise", "frequency", "period", "threads", "callchain", "buffer", "guest_kallsyms"},
            "sampling")) {
    return std::nullopt;
  }
  SamplingConfig s;
  s.mark = mark_of(node);
  const YAML::Node spec_node = node["event"] ? node["event"] : YAML::Node("cpu-clock");
  auto event = event_from(spec_node, &node);
  if (!event) return std::nullopt;
  s.event = std::move(*event);
  if (!node["event"]) s.event.mark = s.mark;
  const Modifiers& m = s.event.spec.mods;
  if (s.event.spec.is_software_or_tracepoint() && (m.precise > 0 || m.precise_max)) {
    error_at(s.event.mark, "precise sampling needs a hardware PMU event; " + s.event.spec.text +
                               " is a software event or tracepoint (drop 'precise' or the p modifiers)");
  }
  if (s.event.guest == GuestMode::kSplit) {
    error(node["guest"], "sampling has no 'split': every sample says itself whether it was taken in the guest "
                         "(guest_kernel, guest_user) or on the host; use auto, include or exclude");
  }
  if (node["frequency"]) s.frequency = integer(node["frequency"], "frequency", kSampleHz);
  if (node["period"]) s.period = integer(node["period"], "period", kSamplePeriod);
  if (node["frequency"] && node["period"]) error(node["period"], "give 'frequency' or 'period', not both");
  if (const auto& t = node["threads"]) {
    auto text = scalar(t, "threads");
    if (text == "vcpu" || text == "all") s.threads = text == "vcpu" ? SampleThreads::kVcpu : SampleThreads::kAll;
    else if (text) error(t, "'threads' must be vcpu or all");
  }
  if (const auto& c = node["callchain"]) {
    auto text = scalar(c, "callchain");
    if (text == "none") s.callchain = Callchain::kNone;
    else if (text == "kernel") s.callchain = Callchain::kKernel;
    else if (text == "kernel+user") s.callchain = Callchain::kKernelUser;
    else if (text) error(c, "'callchain' must be none, kernel or kernel+user");
  }
  if (node["buffer"]) s.buffer_pages = buffer_pages(node["buffer"]);
  if (const auto& k = node["guest_kallsyms"]) {
    s.guest_kallsyms = scalar(k, "guest_kallsyms").value_or("");
    if (!s.guest_kallsyms.starts_with('/')) error(k, "'guest_kallsyms' must be an absolute path (a copy of the guest's /proc/kallsyms)");
  }
  return s;
}

// `precise: 0-3 | max` is the p/pp/ppp/P modifier written as a key; the label shows it the perf way.
bool Loader::apply_precise(const YAML::Node& node, EventSpec& spec) {
  auto text = scalar(node, "precise");
  if (!text) return false;
  if (spec.mods.precise > 0 || spec.mods.precise_max) {
    error(node, "event '" + spec.text + "' already has p/P modifiers; drop 'precise' or the modifier");
    return false;
  }
  if (*text == "max") {
    spec.mods.precise_max = true;
  } else if (text->size() == 1 && (*text)[0] >= '0' && (*text)[0] <= '3') {
    spec.mods.precise = static_cast<unsigned>((*text)[0] - '0');
  } else {
    error(node, "'precise' must be 0, 1, 2, 3 or max");
    return false;
  }
  std::string mods = spec.mods.precise_max ? "P" : std::string(spec.mods.precise, 'p');
  if (!mods.empty()) spec.text += (spec.text.find(':') == std::string::npos || spec.text.ends_with('/') ? ":" : "") + mods;
  return true;
}

std::vector<PolicyEvent> Loader::load_events(const YAML::Node& node) {
  std::vector<PolicyEvent> out;
  if (!node.IsSequence()) {
    error(node, "'events' must be a list of event specs");
    return out;
  }
  std::set<std::string> seen;
  for (const auto& item : node) {
    auto event = load_event(item);
    if (!event) continue;
    if (!seen.insert(event->spec.text).second) {
      error_at(event->mark, "event '" + event->spec.text + "' is listed twice");
      continue;
    }
    out.push_back(std::move(*event));
  }
  return out;
}

bool valid_uuid(std::string_view u) {
  if (u.size() != 36) return false;
  for (size_t i = 0; i < u.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? u[i] != '-' : !std::isxdigit(static_cast<unsigned char>(u[i]))) return false;
  }
  return true;
}

Selector Loader::load_selector(const YAML::Node& node) {
  Selector s;
  if (!keys(node, {"domain", "uuid", "title", "metadata"}, "match")) return s;
  if (node["domain"]) s.domain = scalar(node["domain"], "domain");
  if (s.domain && s.domain->empty()) error(node["domain"], "an empty 'domain' glob never matches");
  if (node["uuid"]) {
    s.uuid = scalar(node["uuid"], "uuid");
    if (s.uuid && !valid_uuid(*s.uuid)) error(node["uuid"], "'uuid' is not a UUID (8-4-4-4-12 hex digits), so it never matches");
  }
  if (node["title"]) s.title = scalar(node["title"], "title");
  if (const auto& m = node["metadata"]; m && keys(m, {"uri", "key", "value"}, "metadata")) {
    auto uri = m["uri"] ? scalar(m["uri"], "uri") : std::nullopt;
    auto key = m["key"] ? scalar(m["key"], "key") : std::nullopt;
    auto value = m["value"] ? scalar(m["value"], "value") : std::nullopt;
    if (uri && key && value) s.metadata = Selector::Metadata{*uri, *key, *value};
    else error(m, "'metadata' needs 'uri', 'key' and 'value'");
  }
  return s;
}

Policy Loader::load_policy(const YAML::Node& node, bool is_default) {
  Policy p;
  p.mark = mark_of(node);
  std::set<std::string> allowed{"events", "aggregation", "interval", "priority", "sampling"};
  if (!is_default) allowed.insert({"name", "match"});
  if (!keys(node, allowed, is_default ? "default" : "policy")) return p;
  p.name = is_default ? "default" : node["name"] ? scalar(node["name"], "name").value_or("") : "";
  if (!is_default && p.name.empty()) error(node, "a policy needs a 'name'");
  if (!is_default && p.name == "default") {
    error(node["name"], "the name 'default' is reserved for the 'default' section (domains no policy matches)");
  }
  if (!is_default && node["match"]) p.match = load_selector(node["match"]);
  if (!is_default && !node["match"]) error(node, "policy '" + p.name + "' needs 'match' (use the 'default' section for every other domain)");
  if (node["events"]) p.events = load_events(node["events"]);
  if (const auto& a = node["aggregation"]) {
    auto text = scalar(a, "aggregation");
    if (text == "per_vcpu" || text == "per_vm") p.aggregation = text == "per_vm" ? Aggregation::kPerVm : Aggregation::kPerVcpu;
    else if (text) error(a, "'aggregation' must be per_vcpu or per_vm");
  }
  if (node["interval"]) p.interval = duration(node["interval"], "interval", kMinInterval);
  if (node["sampling"]) p.sampling = load_sampling(node["sampling"]);
  if (node["priority"]) p.priority = static_cast<int>(integer(node["priority"], "priority", kPriority).value_or(0));
  return p;
}

void Loader::check_shadowing(const std::vector<Policy>& policies) {
  std::set<std::string> names;
  for (size_t i = 0; i < policies.size(); ++i) {
    if (!names.insert(policies[i].name).second) error_at(policies[i].mark, "duplicate policy name '" + policies[i].name + "'");
    for (size_t j = 0; j < i; ++j) {
      const Selector& before = policies[j].match;
      if (before.matches_everything() || (before.domain == "*" && !before.uuid && !before.title && !before.metadata)) {
        error_at(policies[i].mark, "policy '" + policies[i].name + "' never matches: policy '" + policies[j].name +
                                       "' above it matches every domain");
        break;
      }
    }
  }
}

void Loader::load_libvirt(const YAML::Node& node, AgentConfig& config) {
  if (!keys(node, {"uri", "reconnect_max_backoff", "call_timeout"}, "libvirt")) return;
  if (node["call_timeout"]) config.libvirt_call_timeout = duration(node["call_timeout"], "call_timeout", kMinInterval);
  if (node["uri"]) config.libvirt_uri = scalar(node["uri"], "uri").value_or(config.libvirt_uri);
  if (node["reconnect_max_backoff"]) {
    config.reconnect_max_backoff =
        duration(node["reconnect_max_backoff"], "reconnect_max_backoff", milliseconds(1000)).value_or(config.reconnect_max_backoff);
  }
}

void Loader::load_limits(const YAML::Node& node, Limits& limits) {
  if (!keys(node, {"max_counters", "max_series", "max_group_size", "max_sampled_threads", "max_ring_bytes"}, "limits")) return;
  size(node, "max_counters", kMaxCounters, limits.max_counters);
  size(node, "max_series", kMaxSeries, limits.max_series);
  size(node, "max_group_size", kGroupSize, limits.max_group_size);
  size(node, "max_sampled_threads", kMaxSampledThreads, limits.max_sampled_threads);
  size(node, "max_ring_bytes", kMaxRingBytes, limits.max_ring_bytes);
}

void Loader::load_profiles(const YAML::Node& node, ProfileLimits& profiles) {
  if (!keys(node, {"window", "max_samples", "max_stacks", "symbol_cache"}, "profiles")) return;
  if (auto w = node["window"] ? duration(node["window"], "window", milliseconds(10'000)) : std::nullopt) {
    profiles.window = std::chrono::duration_cast<std::chrono::seconds>(*w);
  }
  size(node, "max_samples", kProfileSamples, profiles.max_samples);
  size(node, "max_stacks", kProfileStacks, profiles.max_stacks);
  if (const auto& c = node["symbol_cache"]) {
    auto bytes = parse_bytes(scalar(c, "symbol_cache").value_or(""));
    if (bytes && *bytes >= (1u << 20)) profiles.symbol_cache_bytes = *bytes;
    else error(c, "'symbol_cache' must be a size from 1MiB, e.g. 64MiB");
  }
}

void Loader::load_top(const YAML::Node& root, AgentConfig& config) {
  if (root["listen"]) {
    config.listen = scalar(root["listen"], "listen").value_or(config.listen);
    auto parsed = parse_listen(config.listen);
    if (auto* why = std::get_if<std::string>(&parsed)) error(root["listen"], *why);
  }
  if (root["metrics_path"]) {
    config.metrics_path = scalar(root["metrics_path"], "metrics_path").value_or(config.metrics_path);
    if (!config.metrics_path.starts_with('/')) error(root["metrics_path"], "'metrics_path' must start with '/'");
  }
  if (root["web_config"]) {
    auto text = scalar(root["web_config"], "web_config").value_or("");
    if (text.empty()) error(root["web_config"], "'web_config' must name the web config file (TLS and basic auth)");
    else config.web_config = resolve(text);
  }
  if (root["libvirt"]) load_libvirt(root["libvirt"], config);
  if (root["interval"]) config.interval = duration(root["interval"], "interval", kMinInterval).value_or(config.interval);
  if (root["limits"]) load_limits(root["limits"], config.limits);
  if (root["profiles"]) load_profiles(root["profiles"], config.profiles);
}

AgentConfig Loader::load(const YAML::Node& root) {
  AgentConfig config;
  if (!root.IsMap()) {
    error(root, "the config must be a map with at least 'version: 1'");
    return config;
  }
  keys(root, {"version", "listen", "metrics_path", "web_config", "libvirt", "interval", "events", "default", "policies", "limits", "profiles"},
       "config");
  if (!root["version"]) error(root, "missing 'version: 1'");
  else if (scalar(root["version"], "version") != "1") error(root["version"], "unsupported version; expected 1");
  load_top(root, config);
  config.default_policy = root["default"] ? load_policy(root["default"], true) : Policy{};
  config.default_policy.name = "default";
  if (root["events"] && root["default"] && root["default"]["events"]) error(root["events"], "give the default events either as 'events' or in 'default', not both");
  if (root["events"]) config.default_policy.events = load_events(root["events"]);
  if (!root["events"] && !(root["default"] && root["default"]["events"])) config.default_policy.events = default_events();
  if (const auto& policies = root["policies"]) {
    if (!policies.IsSequence()) error(policies, "'policies' must be a list");
    for (const auto& node : policies) {
      if (node.IsMap()) config.policies.push_back(load_policy(node, false));
      else error(node, "a policy must be a map");
    }
    check_shadowing(config.policies);
  }
  return config;
}

}  // namespace

std::chrono::milliseconds AgentConfig::call_timeout(std::chrono::milliseconds cycle) const {
  return libvirt_call_timeout.value_or(std::clamp(cycle / 2, milliseconds(500), milliseconds(10'000)));
}

ConfigResult parse_agent_config(std::string_view text, const std::string& file) {
  Loader loader(file);
  AgentConfig config;
  auto errors = loader.read(text, [&](const YAML::Node& root) { config = loader.load(root); });
  if (errors.empty()) return config;
  return errors;
}

std::vector<PolicyEvent> default_events() {
  std::vector<PolicyEvent> out;
  for (const char* name : {"task-clock", "context-switches", "cpu-migrations", "page-faults", "kvm:kvm_exit", "kvm:kvm_pio"}) {
    out.push_back({std::get<EventSpec>(parse_event_spec(name)), GuestMode::kAuto, {}});
  }
  return out;
}

}  // namespace kvmprof
