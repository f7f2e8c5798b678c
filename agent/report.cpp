#include "agent/report.h"

#include "policy/attr_text.h"

#include <cstdio>
#include <sstream>

namespace kvmprof {
namespace {

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

void field(std::ostringstream& out, const char* name, const std::string& value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "  %-32s ", name);
  out << buf << value << "\n";
}

std::string opt(const std::optional<bool>& b) { return b ? (*b ? "Y" : "N") : "absent"; }

std::vector<const Quirk*> applying(const HostModel& host, const QuirkTable& quirks) {
  std::vector<const Quirk*> out;
  for (const auto& q : quirks.quirks()) {
    if (!q.match.universal() && q.match.matches(host)) out.push_back(&q);
  }
  return out;
}

}  // namespace

std::string format_attr(const perf_event_attr& a) {
  std::ostringstream out;
  out << "perf_event_attr:\n";
  auto num = [&](const char* name, uint64_t v) { if (v) field(out, name, std::to_string(v)); };
  num("type", a.type);
  num("size", a.size);
  if (a.config) field(out, "config", hex(a.config));
  if (a.sample_period) field(out, "{ sample_period, sample_freq }", std::to_string(a.sample_period));
  if (a.sample_type) field(out, "sample_type", sample_type_names(a.sample_type));
  num("exclude_user", a.exclude_user);
  num("exclude_kernel", a.exclude_kernel);
  num("exclude_hv", a.exclude_hv);
  num("exclude_idle", a.exclude_idle);
  num("freq", a.freq);
  num("precise_ip", a.precise_ip);
  num("exclude_host", a.exclude_host);
  num("exclude_guest", a.exclude_guest);
  num("exclude_callchain_user", a.exclude_callchain_user);
  num("sample_id_all", a.sample_id_all);
  num("watermark", a.watermark);
  num("use_clockid", a.use_clockid);
  num("clockid", a.use_clockid ? static_cast<uint64_t>(a.clockid) : 0);
  num("wakeup_watermark", a.watermark ? a.wakeup_watermark : 0);
  if (a.config1) field(out, "config1", hex(a.config1));
  if (a.config2) field(out, "config2", hex(a.config2));
  return out.str();
}

namespace {

std::string format_ring(const RingProbe* ring) {
  if (!ring) return "not probed (not the live host)";
  if (!ring->caps) return "not available: " + ring->error;
  const RingCaps& c = *ring->caps;
  auto yn = [](const std::optional<bool>& b) { return b ? (*b ? "yes" : "no") : "unknown"; };
  return std::string("rdpmc ") + yn(c.rdpmc) + ", time " + yn(c.time) + ", time_zero " + yn(c.time_zero) + ", time_short " +
         yn(c.time_short) + " (" + c.rule + "); sample times " +
         (ring->use_clockid.value_or(false) ? "CLOCK_MONOTONIC (use_clockid)" : "perf's clock (use_clockid refused)");
}

}  // namespace

std::string format_host(const HostModel& h, const QuirkTable& quirks, const RingProbe* ring) {
  std::ostringstream out;
  const CpuId& c = h.cpu;
  out << "cpu:         " << c.vendor_id << " family " << c.family << " model " << c.model << " (" << hex(c.model)
      << ") stepping " << c.stepping << ", microcode " << (c.microcode ? hex(*c.microcode) : "unknown") << "\n"
      << "             " << c.model_name << "\n"
      << "virt:        vmx " << (c.flags.contains("vmx") ? "yes" : "no") << ", svm " << (c.flags.contains("svm") ? "yes" : "no")
      << ", running under a hypervisor " << (c.flags.contains("hypervisor") ? "yes" : "no") << "\n";
  out << "pmus:\n";
  for (const auto& p : h.pmus) {
    out << "  " << p.name << " (type " << p.type << ")";
    if (p.max_precise) out << " max_precise " << *p.max_precise;
    if (!p.pmu_name.empty()) out << " pmu_name " << p.pmu_name;
    out << (pmu_kind(p.name) == PmuKind::kCore ? "  [core]" : "") << "\n";
  }
  if (h.core_pmus().empty()) out << "  no core PMU: hardware events are unsupported on this host\n";
  out << "kvm:         vendor module " << (h.kvm.vendor_module.empty() ? "none" : h.kvm.vendor_module)
      << ", enable_pmu " << opt(h.kvm.enable_pmu) << ", enable_mediated_pmu " << opt(h.kvm.enable_mediated_pmu)
      << ", sev " << opt(h.kvm.sev) << "\n"
      << "access:      perf_event_paranoid " << h.perf_event_paranoid << ", CAP_PERFMON "
      << (h.cap_perfmon ? "yes" : "no") << ", CAP_SYS_ADMIN " << (h.cap_sys_admin ? "yes" : "no") << "\n"
      << "kernel:      perf_event_attr size "
      << (h.kernel.attr_size ? std::to_string(*h.kernel.attr_size) : "not probed")
      << ", exclude_guest/exclude_host bits "
      << (h.kernel.exclude_guest_bits ? (*h.kernel.exclude_guest_bits ? "accepted" : "rejected (EINVAL)") : "not probed")
      << "\nring:        " << format_ring(ring)
      << "\nquirks specific to this host:\n";
  for (const Quirk* q : applying(h, quirks)) out << "  " << q->id << ": " << q->description << "\n    source: " << q->source << "\n";
  return out.str();
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string format_host_json(const HostModel& h, const QuirkTable& quirks, const RingProbe* ring) {
  std::ostringstream out;
  const CpuId& c = h.cpu;
  auto jb = [](const std::optional<bool>& b) { return b ? (*b ? "true" : "false") : "null"; };
  out << "{\"cpu\":{\"vendor\":" << json_string(c.vendor_id) << ",\"family\":" << c.family << ",\"model\":" << c.model
      << ",\"stepping\":" << c.stepping << ",\"microcode\":" << (c.microcode ? std::to_string(*c.microcode) : "null")
      << ",\"model_name\":" << json_string(c.model_name) << ",\"vmx\":" << (c.flags.contains("vmx") ? "true" : "false")
      << ",\"svm\":" << (c.flags.contains("svm") ? "true" : "false") << "},\"pmus\":[";
  for (size_t i = 0; i < h.pmus.size(); ++i) {
    const auto& p = h.pmus[i];
    out << (i ? "," : "") << "{\"name\":" << json_string(p.name) << ",\"type\":" << p.type << ",\"max_precise\":"
        << (p.max_precise ? std::to_string(*p.max_precise) : "null") << ",\"pmu_name\":" << json_string(p.pmu_name)
        << ",\"core\":" << (pmu_kind(p.name) == PmuKind::kCore ? "true" : "false") << "}";
  }
  out << "],\"kvm\":{\"vendor_module\":" << json_string(h.kvm.vendor_module) << ",\"enable_pmu\":" << jb(h.kvm.enable_pmu)
      << ",\"enable_mediated_pmu\":" << jb(h.kvm.enable_mediated_pmu) << ",\"sev\":" << jb(h.kvm.sev) << "}"
      << ",\"perf_event_paranoid\":" << h.perf_event_paranoid << ",\"cap_perfmon\":" << (h.cap_perfmon ? "true" : "false")
      << ",\"cap_sys_admin\":" << (h.cap_sys_admin ? "true" : "false") << ",\"kernel\":{\"attr_size\":"
      << (h.kernel.attr_size ? std::to_string(*h.kernel.attr_size) : "null")
      << ",\"exclude_guest_bits\":" << jb(h.kernel.exclude_guest_bits) << "},\"ring\":";
  if (ring && ring->caps) {
    out << "{\"rdpmc\":" << jb(ring->caps->rdpmc) << ",\"time\":" << jb(ring->caps->time) << ",\"time_zero\":"
        << jb(ring->caps->time_zero) << ",\"time_short\":" << jb(ring->caps->time_short)
        << ",\"rule\":" << json_string(ring->caps->rule) << ",\"use_clockid\":" << jb(ring->use_clockid) << "}";
  } else {
    out << "null";
  }
  out << ",\"quirks\":[";
  auto qs = applying(h, quirks);
  for (size_t i = 0; i < qs.size(); ++i) out << (i ? "," : "") << json_string(qs[i]->id);
  out << "]}\n";
  return out.str();
}

std::string format_decision(const Decision& d, const OpenedDecision* opened, bool sampling) {
  std::ostringstream out;
  DecisionStatus status = opened ? opened->status : d.status;
  std::string semantics = opened ? opened->semantics : d.semantics;
  std::string what = semantics.empty() ? "nothing (not opened)" : semantics;
  if (sampling && semantics == "all") what = "all: samples tagged guest_kernel/guest_user, host_kernel, host_user by their misc bits";
  if (sampling && semantics == "host") what = "host: samples tagged host_kernel/host_user";
  out << (sampling ? "sampling " : "") << d.event << "  (guest: " << to_string(d.requested) << (d.explicit_request ? ", explicit" : "")
      << ")\n"
      << "  status:    " << to_string(status) << "\n"
      << (sampling ? "  samples:   " : "  counts:    ") << what << "\n"
      << "  reason:    " << (opened && !opened->reason.empty() ? opened->reason : d.reason) << "\n";
  for (const auto& s : d.sources) out << "  source:    " << s << "\n";
  if (opened) {
    for (const auto& s : opened->steps) out << "  fallback:  " << s.action << (s.quirk.empty() ? "" : " [" + s.quirk + "]") << "\n";
  }
  size_t n = opened ? opened->counters.size() : d.counters.size();
  for (size_t i = 0; i < n; ++i) {
    const std::string& mode = opened ? opened->counters[i].mode : d.counters[i].mode;
    const std::string& pmu = opened ? opened->counters[i].pmu : d.counters[i].pmu;
    const perf_event_attr& attr = opened ? opened->counters[i].attr : d.counters[i].attr;
    out << (sampling ? "  sampler " : "  counter ") << i + 1 << (sampling ? ": samples " : ": counts ") << mode << (pmu.empty() ? "" : " on PMU " + pmu) << "\n" << format_attr(attr);
  }
  return out.str();
}

}  // namespace kvmprof
