#include "policy/host_model.h"

#include <charconv>

namespace kvmprof {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

template <class T>
std::optional<T> number(std::string_view s, int base = 10) {
  if (base == 16 && (s.starts_with("0x") || s.starts_with("0X"))) s.remove_prefix(2);
  T value{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), value, base);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return value;
}

void set_field(CpuId& cpu, std::string_view key, std::string_view value) {
  if (key == "vendor_id") {
    cpu.vendor_id = value;
    cpu.vendor = value == "GenuineIntel" ? Vendor::kIntel
                 : value == "AuthenticAMD" ? Vendor::kAmd
                                           : Vendor::kUnknown;
  } else if (key == "cpu family") {
    cpu.family = number<unsigned>(value).value_or(0);
  } else if (key == "model") {
    cpu.model = number<unsigned>(value).value_or(0);
  } else if (key == "stepping") {
    cpu.stepping = number<unsigned>(value).value_or(0);
  } else if (key == "microcode") {
    cpu.microcode = number<uint64_t>(value, 16);
  } else if (key == "model name") {
    cpu.model_name = value;
  } else if (key == "flags") {
    size_t i = 0;
    while (i < value.size()) {
      size_t end = value.find(' ', i);
      if (end == std::string_view::npos) end = value.size();
      if (end > i) cpu.flags.emplace(value.substr(i, end - i));
      i = end + 1;
    }
  }
}

}  // namespace

CpuId parse_cpuinfo(std::string_view text) {
  CpuId cpu;
  size_t i = 0;
  while (i < text.size()) {
    size_t end = text.find('\n', i);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(i, end - i);
    i = end + 1;
    if (trim(line).empty()) {
      if (!cpu.vendor_id.empty()) break;  // the first processor is enough
      continue;
    }
    size_t colon = line.find(':');
    if (colon != std::string_view::npos) set_field(cpu, trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
  }
  return cpu;
}

std::optional<bool> parse_param_bool(std::string_view text) {
  text = trim(text);
  if (text == "Y" || text == "y" || text == "1") return true;
  if (text == "N" || text == "n" || text == "0") return false;
  return std::nullopt;
}

PmuKind pmu_kind(std::string_view name) {
  if (name == "cpu" || name == "cpu_core" || name == "cpu_atom" || name == "cpu_lowpower") return PmuKind::kCore;
  if (name.starts_with("ibs_")) return PmuKind::kIbs;
  if (name == "software" || name == "tracepoint" || name == "breakpoint" || name == "kprobe" ||
      name == "uprobe") {
    return PmuKind::kSoftware;
  }
  return PmuKind::kUncore;
}

const PmuInfo* HostModel::pmu(std::string_view name) const {
  for (const auto& p : pmus) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

std::vector<const PmuInfo*> HostModel::core_pmus() const {
  std::vector<const PmuInfo*> out;
  for (const auto& p : pmus) {
    if (pmu_kind(p.name) == PmuKind::kCore) out.push_back(&p);
  }
  return out;
}

}  // namespace kvmprof
