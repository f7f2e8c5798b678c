#include "policy/decision.h"

#include "policy/pmu_format.h"

namespace kvmprof {
namespace {

constexpr unsigned kAmdMaxPrecise = 2;  // arch/x86/events/amd/core.c: >2 -> EOPNOTSUPP

struct Context {
  const EventSpec& spec;
  const HostModel& host;
  const QuirkTable& quirks;
  Decision& d;
  std::vector<const PmuInfo*> targets;
  PmuKind kind = PmuKind::kCore;
};

bool is_inclusive(GuestMode m) { return m == GuestMode::kInclude || m == GuestMode::kSplit || m == GuestMode::kGuestOnly; }

void cite(Decision& d, const Quirk& q) { d.sources.push_back(q.id + ": " + q.source); }

void refuse(Decision& d, const Quirk* q, const std::string& why) {
  d.status = DecisionStatus::kRefused;
  d.semantics.clear();
  d.reason = why + (q ? " [" + q->id + "]" : "");
  if (q) cite(d, *q);
}

void unsupported(Decision& d, const std::string& why) {
  d.status = DecisionStatus::kUnsupported;
  d.semantics.clear();
  d.reason = why;
}

// Auto settled for less than a split: say so.
void settle(Context& c, const std::string& semantics, const Quirk* q, const std::string& why) {
  c.d.semantics = semantics;
  if (c.d.explicit_request) return;
  c.d.status = semantics == "split" ? DecisionStatus::kOk : DecisionStatus::kDegraded;
  c.d.reason = why + (q ? " [" + q->id + "]" : "");
  if (q) cite(c.d, *q);
}

std::string requested_semantics(GuestMode m) {
  switch (m) {
    case GuestMode::kInclude: return "all";
    case GuestMode::kExclude: return "host";
    case GuestMode::kSplit: return "split";
    case GuestMode::kGuestOnly: return "guest";
    default: return "";
  }
}

Decision start(const EventSpec& spec, GuestMode requested) {
  Decision d;
  d.event = spec.text;
  d.requested = requested;
  const Modifiers& m = spec.mods;
  if (m.guest_host_given) {
    d.requested = !m.exclude_guest && !m.exclude_host ? GuestMode::kInclude
                  : m.exclude_host                    ? GuestMode::kGuestOnly
                                                      : GuestMode::kExclude;
  }
  d.explicit_request = d.requested != GuestMode::kAuto;
  d.may_drop_exclude_bits = !d.explicit_request;
  return d;
}

void software(Context& c) {
  const Quirk* q = c.quirks.find("software_no_split", c.host);
  if (c.spec.mods.precise > 0 || c.spec.mods.precise_max) {
    return unsupported(c.d, "precise sampling needs a hardware PMU event, not a software event or tracepoint");
  }
  if (c.d.explicit_request && c.d.requested != GuestMode::kInclude) {
    return refuse(c.d, q, "software events and tracepoints cannot tell guest from host; use guest: include or auto");
  }
  c.d.semantics = "all";
  c.d.reason = "software event or tracepoint: counts the thread's host and guest time together";
}

bool find_targets(Context& c) {
  if (const auto* named = std::get_if<NamedEvent>(&c.spec.kind)) {
    unsupported(c.d, "vendor event " + named->name + " is not known for this CPU (libpfm4)");
    return false;
  }
  if (const auto* terms = std::get_if<PmuTermsEvent>(&c.spec.kind)) {
    const PmuInfo* pmu = c.host.pmu(terms->pmu);
    if (!pmu) unsupported(c.d, "no PMU named " + terms->pmu + " under /sys/bus/event_source/devices");
    if (pmu) c.targets.push_back(pmu);
  } else {
    c.targets = c.host.core_pmus();
    if (c.targets.empty()) {
      unsupported(c.d, "no hardware PMU on this host (no cpu PMU under /sys/bus/event_source/devices)");
    }
  }
  if (!c.targets.empty()) c.kind = pmu_kind(c.targets.front()->name);
  return !c.targets.empty();
}

// Sets d.precise; AMD precise events are served by IBS.
bool resolve_precise(Context& c) {
  const Modifiers& m = c.spec.mods;
  if (m.precise == 0 && !m.precise_max) return true;
  c.d.may_lower_precise = m.precise_max || !c.d.explicit_request;
  if (c.kind == PmuKind::kUncore) {
    unsupported(c.d, "PMU " + c.targets.front()->name + " cannot sample precisely");
    return false;
  }
  bool amd = c.host.cpu.vendor == Vendor::kAmd;
  if (amd && !c.host.pmu("ibs_op")) {
    unsupported(c.d, "no IBS PMU (ibs_op): precise events are not available on this AMD host");
    return false;
  }
  unsigned max = amd ? kAmdMaxPrecise : c.targets.front()->max_precise.value_or(3);
  if (max == 0) {
    unsupported(c.d, "this PMU has no precise sampling (caps/max_precise is 0)");
    return false;
  }
  if (m.precise > max) {
    refuse(c.d, nullptr, "asks precise level " + std::to_string(m.precise) + " but this PMU supports at most " +
                             std::to_string(max) + " (caps/max_precise); the kernel would answer EOPNOTSUPP");
    return false;
  }
  c.d.precise = m.precise_max ? max : m.precise;
  if (amd) c.kind = PmuKind::kIbs;
  return true;
}

void no_exclude_pmu(Context& c, const Quirk* q, const std::string& what) {
  if (c.d.explicit_request && c.d.requested != GuestMode::kInclude) {
    return refuse(c.d, q, what + " cannot separate guest from host (it rejects exclude bits with EINVAL)");
  }
  settle(c, "all", q, what + " counts host and guest together");
}

void intel_precise(Context& c) {
  const Quirk* hazard = c.quirks.find("precise_exclude_host_hazard", c.host);
  const Quirk* host_only = c.quirks.find("precise_host_only", c.host);
  c.d.may_drop_exclude_bits = false;  // a precise event must never come to include the guest
  switch (c.d.requested) {
    case GuestMode::kGuestOnly:
    case GuestMode::kSplit:
      return refuse(c.d, hazard, "a precise event with exclude_host=1 (guest side) can hang guests; never opened");
    case GuestMode::kInclude:
      return refuse(c.d, host_only, "precise (PEBS) events cannot count guest mode on Intel: the guest part "
                                    "would be silently dropped; use guest: exclude");
    case GuestMode::kExclude: c.d.semantics = "host"; return;
    default:
      settle(c, "host", host_only, "precise (PEBS) events count the host only on Intel: PEBS is disabled on every VM entry");
  }
}

void amd_counting(Context& c) {
  const Quirk* svm = c.quirks.find("guest_bits_need_svm", c.host);
  bool svm_on = c.host.kvm.vendor_module == "kvm_amd" && c.host.cpu.flags.contains("svm");
  if (!svm_on && (c.d.requested == GuestMode::kSplit || c.d.requested == GuestMode::kGuestOnly)) {
    return refuse(c.d, svm, "the guest side cannot be counted while SVM is off (kvm_amd not loaded): GuestOnly counts nothing");
  }
  if (c.d.explicit_request) return void(c.d.semantics = requested_semantics(c.d.requested));
  if (!svm_on) return settle(c, "host", svm, "SVM is off (kvm_amd not loaded): no guest can run, counting the host");
  settle(c, "split", nullptr, "");
}

void core_semantics(Context& c) {
  if (const Quirk* mediated = c.quirks.find("mediated_vpmu", c.host)) {
    if (c.kind == PmuKind::kIbs) {
      return unsupported(c.d, "IBS cannot exclude the guest, and guest-inclusive events block VM starts under the "
                              "mediated vPMU [" + mediated->id + "]");
    }
    if (is_inclusive(c.d.requested)) {
      return refuse(c.d, mediated, "guest-inclusive core events under KVM's mediated vPMU make VM starts fail EBUSY");
    }
    c.d.may_drop_exclude_bits = false;  // host-only here is for safety: never widen it at open time
    if (!c.d.explicit_request) return settle(c, "host", mediated, "mediated vPMU: guest-inclusive core events would stop VMs from starting");
  }
  if (c.kind == PmuKind::kIbs) return no_exclude_pmu(c, c.quirks.find("ibs_no_exclude", c.host), "AMD IBS");
  if (c.d.precise > 0 && c.host.cpu.vendor == Vendor::kIntel) return intel_precise(c);
  if (c.host.cpu.vendor == Vendor::kAmd) return amd_counting(c);
  if (c.d.explicit_request) return void(c.d.semantics = requested_semantics(c.d.requested));
  if (!c.host.virtualization()) return settle(c, "host", nullptr, "no VMX/SVM on this CPU: no guests, counting the host");
  settle(c, "split", nullptr, "");
}

void note(Context& c, const Quirk& q, const std::string& text) {
  c.d.status = DecisionStatus::kDegraded;
  c.d.reason += std::string(c.d.reason.empty() ? "" : "; ") + text + " [" + q.id + "]";
  cite(c.d, q);
}

void add_notes(Context& c) {
  if (c.d.precise > 0 && c.host.cpu.vendor == Vendor::kIntel) {
    if (const Quirk* q = c.quirks.find("host_pebs_disables_guest_pebs", c.host)) {
      note(c, *q, "while this event is open, KVM switches guest PEBS off for every VM on this CPU");
    }
  }
  if (c.d.precise > 0) {
    if (const Quirk* q = c.quirks.find("pebs_no_isolation", c.host)) {
      note(c, *q, "PEBS is not isolated from guests on this CPU/microcode: every VM entry and exit also "
                  "switches PEBS_ENABLE (slower exits)");
    }
  }
  if (c.d.semantics == "split" || c.d.semantics == "guest") {
    if (const Quirk* q = c.quirks.find("sev_ignores_guest_bits", c.host)) {
      note(c, *q, "for SEV guests the host/guest bits may not take effect");
    }
  }
  if (c.targets.size() > 1) {
    if (const Quirk* q = c.quirks.find("hybrid_pmus", c.host)) {
      c.d.reason += std::string(c.d.reason.empty() ? "" : "; ") + "hybrid CPU: one counter per core type, summed [" + q->id + "]";
      cite(c.d, *q);
    }
  }
}

perf_event_attr base_attr(Context& c, const PmuInfo* pmu) {
  perf_event_attr a{};
  a.size = sizeof(a);
  const Modifiers& m = c.spec.mods;
  a.exclude_user = m.exclude_user;
  a.exclude_kernel = m.exclude_kernel;
  a.exclude_hv = m.exclude_hv;
  a.exclude_idle = m.exclude_idle;
  a.precise_ip = c.d.precise & 3u;  // 0-3, checked in resolve_precise
  if (c.d.precise > 0) {
    a.freq = 1;
    a.sample_freq = kDefaultSampleFreq;
    a.sample_type = PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_PERIOD;
  }
  if (const auto* sw = std::get_if<SoftwareEvent>(&c.spec.kind)) {
    a.type = PERF_TYPE_SOFTWARE;
    a.config = sw->config;
  } else if (std::holds_alternative<TracepointEvent>(c.spec.kind)) {
    a.type = PERF_TYPE_TRACEPOINT;  // config: the tracepoint id, filled in from tracefs
  } else if (const auto* core = std::get_if<CoreEvent>(&c.spec.kind)) {
    bool hybrid = c.targets.size() > 1;
    a.type = hybrid && core->type == PERF_TYPE_RAW ? pmu->type : core->type;
    a.config = core->config;
    if (hybrid && core->type != PERF_TYPE_RAW) a.config |= uint64_t{pmu->type} << PERF_PMU_TYPE_SHIFT;
  } else {
    a.type = pmu->type;
  }
  return a;
}

bool build_counters(Context& c) {
  std::vector<const PmuInfo*> pmus = c.targets;
  if (pmus.empty()) pmus.push_back(nullptr);
  for (const PmuInfo* pmu : pmus) {
    perf_event_attr a = base_attr(c, pmu);
    if (const auto* terms = std::get_if<PmuTermsEvent>(&c.spec.kind)) {
      auto encoded = encode_pmu_terms(*pmu, terms->terms);
      if (auto* err = std::get_if<std::string>(&encoded)) {
        refuse(c.d, nullptr, *err);
        return false;
      }
      const auto& config = std::get<EncodedConfig>(encoded).config;
      a.config = config[0];
      a.config1 = config[1];
      a.config2 = config[2];
    }
    std::string name = pmu ? pmu->name : "";
    if (c.d.semantics == "split" || c.d.semantics == "host") {
      perf_event_attr host = a;
      host.exclude_guest = 1;
      c.d.counters.push_back({"host", name, host});
    }
    if (c.d.semantics == "split" || c.d.semantics == "guest") {
      perf_event_attr guest = a;
      guest.exclude_host = 1;
      c.d.counters.push_back({"guest", name, guest});
    }
    if (c.d.semantics == "all") c.d.counters.push_back({"all", name, a});
  }
  return true;
}

}  // namespace

Decision decide(const EventSpec& spec, GuestMode requested, const HostModel& host, const QuirkTable& quirks) {
  Decision d = start(spec, requested);
  Context c{spec, host, quirks, d, {}, PmuKind::kSoftware};
  if (spec.is_software_or_tracepoint()) {
    software(c);
  } else if (find_targets(c) && resolve_precise(c)) {
    if (c.kind == PmuKind::kUncore) {
      no_exclude_pmu(c, quirks.find("uncore_no_exclude", host), "PMU " + c.targets.front()->name);
    } else {
      core_semantics(c);
    }
  }
  if (d.status == DecisionStatus::kRefused || d.status == DecisionStatus::kUnsupported) return d;
  if (d.reason.empty()) {
    d.reason = d.semantics == "split" ? "counts host and guest apart: one counter with exclude_guest=1, one with exclude_host=1"
                                      : "counts " + d.semantics + " as requested";
  }
  add_notes(c);
  build_counters(c);
  return d;
}

std::string_view to_string(DecisionStatus status) {
  switch (status) {
    case DecisionStatus::kOk: return "ok";
    case DecisionStatus::kDegraded: return "degraded";
    case DecisionStatus::kRefused: return "refused";
    case DecisionStatus::kUnsupported: return "unsupported";
  }
  return "?";
}

}  // namespace kvmprof
