// The config's values: durations, guest settings, the sampling block's rate, ring size and
// names, parsed from their text and named as the config writes them.
#include <linux/perf_event.h>

#include <charconv>
#include <map>

#include "policy/agent_config.h"

namespace kvmprof {

using std::chrono::milliseconds;

milliseconds parse_duration(std::string_view text) {
  uint64_t value = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || p == text.data()) return milliseconds(0);
  const std::map<std::string_view, uint64_t> units{{"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}};
  auto unit = units.find(std::string_view(p, text.data() + text.size() - p));
  if (unit == units.end() || value > 1'000'000'000) return milliseconds(0);
  return milliseconds(value * unit->second);
}

std::optional<GuestMode> parse_guest_mode(std::string_view text) {
  if (text == "auto") return GuestMode::kAuto;
  if (text == "include") return GuestMode::kInclude;
  if (text == "exclude") return GuestMode::kExclude;
  if (text == "split") return GuestMode::kSplit;
  return std::nullopt;
}

std::string_view to_string(GuestMode mode) {
  switch (mode) {
    case GuestMode::kAuto: return "auto";
    case GuestMode::kInclude: return "include";
    case GuestMode::kExclude: return "exclude";
    case GuestMode::kSplit: return "split";
    case GuestMode::kGuestOnly: return "guest-only";
  }
  return "?";
}

std::optional<uint64_t> SamplingConfig::rate_hz() const {
  if (!period) return frequency.value_or(kDefaultSampleHz);
  const auto* sw = std::get_if<SoftwareEvent>(&event.spec.kind);
  bool clock = sw && (sw->config == PERF_COUNT_SW_CPU_CLOCK || sw->config == PERF_COUNT_SW_TASK_CLOCK);
  if (!clock) return std::nullopt;
  return std::max<uint64_t>(1, 1'000'000'000 / *period);
}

size_t SamplingConfig::data_pages() const {
  if (buffer_pages) return *buffer_pages;
  constexpr uint64_t kBytesPerSecondPerHz = 1024 / 4;  // a quarter second of 1 KiB samples
  uint64_t want = rate_hz().value_or(kDefaultSampleHz * 10) * kBytesPerSecondPerHz / kRingPageBytes;
  size_t pages = 2;
  while (pages < want && pages < 128) pages *= 2;
  return pages;
}

std::string_view to_string(SampleThreads threads) { return threads == SampleThreads::kVcpu ? "vcpu" : "all"; }

std::string_view to_string(Callchain callchain) {
  switch (callchain) {
    case Callchain::kNone: return "none";
    case Callchain::kKernel: return "kernel";
    case Callchain::kKernelUser: return "kernel+user";
  }
  return "?";
}

std::optional<size_t> parse_buffer_pages(std::string_view text) {
  uint64_t value = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  const std::map<std::string_view, uint64_t> units{{"", 0}, {"KiB", 1024}, {"MiB", 1024 * 1024}};
  auto unit = units.find(std::string_view(p, text.data() + text.size() - p));
  if (ec != std::errc() || p == text.data() || unit == units.end() || value > kMaxRingPages * kRingPageBytes) {
    return std::nullopt;
  }
  const uint64_t pages = unit->second == 0 ? value : value * unit->second / kRingPageBytes;
  const bool whole = unit->second == 0 || value * unit->second % kRingPageBytes == 0;
  if (!whole || pages < 1 || pages > kMaxRingPages || (pages & (pages - 1)) != 0) return std::nullopt;
  return pages;
}

std::optional<uint64_t> parse_bytes(std::string_view text) {
  uint64_t value = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  const std::map<std::string_view, uint64_t> units{{"", 1}, {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30}};
  auto unit = units.find(std::string_view(p, text.data() + text.size() - p));
  if (ec != std::errc() || p == text.data() || unit == units.end() || value > (1ull << 40) / unit->second) return std::nullopt;
  return value * unit->second;
}

}  // namespace kvmprof
