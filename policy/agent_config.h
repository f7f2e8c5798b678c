#pragma once
// The agent's configuration (config/*.yaml, `version: 1`) and its validating loader. Pure: it
// takes the file's text and name; the caller reads the file. Every problem is reported, each
// as FILE:LINE:COLUMN: message.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "policy/config_error.h"
#include "policy/event_spec.h"

namespace kvmprof {

enum class GuestMode { kAuto, kInclude, kExclude, kSplit, kGuestOnly };
enum class Aggregation { kPerVcpu, kPerVm };
enum class SampleThreads { kVcpu, kAll };               // all: vCPU, emulator and I/O threads
enum class Callchain { kNone, kKernel, kKernelUser };

struct PolicyEvent {
  EventSpec spec;
  GuestMode guest = GuestMode::kAuto;
  Mark mark;  // where the event is written, for errors found later (refusals on a host)
};

inline constexpr uint64_t kDefaultSampleHz = 99;
inline constexpr size_t kRingPageBytes = 4096;  // x86 page size: ring buffers are counted in pages
inline constexpr size_t kMaxRingPages = 1024;

// A policy's `sampling:` block: one event sampled on each of the VM's threads, into a ring
// buffer per thread.
struct SamplingConfig {
  PolicyEvent event;                  // default cpu-clock; guest: auto, include or exclude
  std::optional<uint64_t> frequency;  // Hz; the default (99) unless a period is given
  std::optional<uint64_t> period;     // events per sample
  SampleThreads threads = SampleThreads::kAll;
  Callchain callchain = Callchain::kKernel;
  std::optional<size_t> buffer_pages;  // data pages per thread, a power of two; default: from the rate
  // A copy of the guests' /proc/kallsyms (as `perf kvm --guestkallsyms`): names guest kernel
  // frames in profiles when the sampled addresses fall inside its symbols.
  std::string guest_kallsyms;
  Mark mark;

  // Samples per second per busy thread: the frequency, or what a period of cpu-clock or
  // task-clock (nanoseconds) means; nullopt when the period's event rate is unknown.
  std::optional<uint64_t> rate_hz() const;
  // Data pages of each thread's ring: as configured, else room for a quarter second of samples
  // of 1 KiB (a deep kernel callchain) at the rate, from 2 to 128 pages.
  size_t data_pages() const;
};

// All given selectors must hold; a policy without any matches every domain.
struct Selector {
  std::optional<std::string> domain;  // glob over the libvirt name: * ? [..]
  std::optional<std::string> uuid;
  std::optional<std::string> title;   // libvirt <title>, exact
  struct Metadata {
    std::string uri;    // namespace URI of the <metadata> element
    std::string key;    // child element name
    std::string value;  // its text
  };
  std::optional<Metadata> metadata;

  bool matches_everything() const { return !domain && !uuid && !title && !metadata; }
};

struct Policy {
  std::string name;
  Selector match;
  std::vector<PolicyEvent> events;
  Aggregation aggregation = Aggregation::kPerVcpu;
  std::optional<std::chrono::milliseconds> interval;  // default: the agent's interval
  int priority = 0;  // higher keeps its counters longer when a host limit is hit
  std::optional<SamplingConfig> sampling;  // off unless given
  Mark mark;
};

struct Limits {
  size_t max_counters = 0;  // open perf counters on the host; 0 = no limit
  size_t max_series = 0;    // exported per-VM/per-vCPU series; 0 = no limit
  size_t max_group_size = 4;  // hardware counters per group (general-purpose counters per core)
  size_t max_sampled_threads = 0;  // threads with a sampling ring on the host; 0 = no limit
  size_t max_ring_bytes = 0;       // bytes of all sampling rings (locked memory); 0 = no limit
};

// What profiles keep (`profiles:`): samples of the last window, bounded; when a bound is hit
// the oldest samples go, nothing grows.
struct ProfileLimits {
  std::chrono::seconds window{60};           // the longest `seconds` a profile can ask for
  size_t max_samples = 262'144;              // samples kept, over all VMs
  size_t max_stacks = 65'536;                // distinct callchains among them
  size_t symbol_cache_bytes = size_t{64} << 20;  // ELF symbol tables and kallsyms kept
};

struct AgentConfig {
  std::string listen = ":9477";  // [address]:port; ":9477" listens on every IPv4 address
  std::string metrics_path = "/metrics";
  // The web config (TLS, basic auth; the exporter toolkit's format), relative paths from the
  // config's directory; empty: plain HTTP without auth.
  std::string web_config;
  std::string libvirt_uri = "qemu:///system";
  std::chrono::milliseconds interval{5000};
  std::chrono::milliseconds reconnect_max_backoff{30000};
  // How long a libvirt call may take before kvmprof_libvirt_up says 0; default: see call_timeout().
  std::optional<std::chrono::milliseconds> libvirt_call_timeout;

  // The configured timeout, else half the shortest interval, from 500 ms to 10 s.
  std::chrono::milliseconds call_timeout(std::chrono::milliseconds cycle) const;
  std::vector<Policy> policies;  // first match in file order
  Policy default_policy;         // for domains no policy matches
  Limits limits;
  ProfileLimits profiles;
};

using ConfigResult = std::variant<AgentConfig, std::vector<ConfigError>>;

ConfigResult parse_agent_config(std::string_view text, const std::string& file);

// The default policy's events when the file lists none.
std::vector<PolicyEvent> default_events();

// "5s", "250ms", "2m" -> milliseconds; 0 on error.
std::chrono::milliseconds parse_duration(std::string_view text);

std::optional<GuestMode> parse_guest_mode(std::string_view text);
std::string_view to_string(SampleThreads threads);
// `buffer:` as pages ("16") or bytes ("64KiB", "1MiB"): data pages per ring, a power of two
// from 1 to kMaxRingPages; nullopt when it is not.
std::optional<size_t> parse_buffer_pages(std::string_view text);
std::string_view to_string(Callchain callchain);
// "64MiB", "512KiB", "1GiB" or plain bytes; nullopt when it does not parse or exceeds 1 TiB.
std::optional<uint64_t> parse_bytes(std::string_view text);
std::string_view to_string(GuestMode mode);

}  // namespace kvmprof
