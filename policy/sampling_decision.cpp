#include "policy/sampling_decision.h"

#include <ctime>

namespace kvmprof {
namespace {

const char* kGuestSamples = "each sample's mode comes from its misc bits; guest samples carry the guest IP and no callchain";

Decision software_sampling(const SamplingConfig& s, const HostModel& host, const QuirkTable& quirks) {
  const Modifiers& m = s.event.spec.mods;
  EventSpec plain = s.event.spec;  // its attrs as counted, then the guest setting as sampling means it
  plain.mods.exclude_guest = plain.mods.exclude_host = plain.mods.guest_host_given = false;
  Decision d = decide(plain, GuestMode::kInclude, host, quirks);
  d.event = s.event.spec.text;
  d.requested = !m.guest_host_given ? s.event.guest
                : m.exclude_host    ? GuestMode::kGuestOnly
                : m.exclude_guest   ? GuestMode::kExclude
                                    : GuestMode::kInclude;
  d.explicit_request = d.requested != GuestMode::kAuto;
  if (d.status != DecisionStatus::kOk) return d;
  const Quirk* q = quirks.find("software_sample_guest_tag", host);
  std::string tag = q ? " [" + q->id + "]" : "";
  if (q) d.sources = {q->id + ": " + q->source};
  if (d.requested == GuestMode::kGuestOnly || d.requested == GuestMode::kSplit) {
    d.status = DecisionStatus::kRefused;
    d.semantics.clear();
    d.counters.clear();
    d.reason = d.requested == GuestMode::kSplit
                   ? std::string("sampling has no split: ") + kGuestSamples + "; use guest: auto, include or exclude"
                   : "a software event cannot sample the guest only: exclude_host has no effect on software events" + tag;
    return d;
  }
  if (std::holds_alternative<TracepointEvent>(s.event.spec.kind)) {  // fired by host code, never in the guest window
    d.sources.clear();
    d.reason = "tracepoint: fires in host code (KVM, QEMU's syscalls), so its samples are host_kernel; exclude_guest "
               "and exclude_host have no effect";
    return d;
  }
  if (d.requested == GuestMode::kExclude) {
    for (auto& c : d.counters) {
      c.attr.exclude_guest = 1;
      c.mode = "host";
    }
    d.semantics = "host";
    d.status = DecisionStatus::kDegraded;
    d.reason = "a software event cannot exclude the guest: it samples the thread in the guest window too; "
               "exclude_guest=1 only makes kernels since 6.13 tag those samples host_kernel (KVM's registers) "
               "instead of guest, and before 6.13 they are tagged guest anyway" + tag;
    return d;
  }
  d.reason = "software event: samples the thread wherever it runs; samples taken while the guest ran are tagged "
             "guest_kernel/guest_user with the guest IP and no callchain (before 6.13 whatever exclude_guest says); "
             "exclude_host has no effect on software events" + tag;
  return d;
}

// A split becomes one guest-inclusive sampling event per PMU: the samples say where they were taken.
void merge_split(Decision& d) {
  if (d.semantics != "split") return;
  std::vector<PlannedCounter> merged;
  for (const auto& c : d.counters) {
    if (c.mode != "host") continue;
    PlannedCounter all = c;
    all.mode = "all";
    all.attr.exclude_guest = all.attr.exclude_host = 0;
    merged.push_back(all);
  }
  d.counters = std::move(merged);
  d.semantics = "all";
  d.reason = std::string("samples host and guest with one event per thread: ") + kGuestSamples +
             (d.status == DecisionStatus::kDegraded ? "; " + d.reason : "");
}

// sys_perf_event_open(): sample_freq above kernel.perf_event_max_sample_rate is EINVAL.
bool above_max_rate(Decision& d, const SamplingConfig& s, const HostModel& host) {
  if (s.period || !host.max_sample_rate || s.frequency.value_or(kDefaultSampleHz) <= *host.max_sample_rate) return false;
  d.status = DecisionStatus::kRefused;
  d.counters.clear();
  d.semantics.clear();
  d.reason = "frequency " + std::to_string(s.frequency.value_or(kDefaultSampleHz)) + " Hz is above this host's "
             "kernel.perf_event_max_sample_rate (" + std::to_string(*host.max_sample_rate) + "; the kernel lowers it "
             "when sampling interrupts take too long): the kernel would answer EINVAL; lower the frequency";
  return true;
}

}  // namespace

Decision decide_sampling(const SamplingConfig& s, const HostModel& host, const QuirkTable& quirks) {
  Decision d;
  if (s.event.spec.is_software_or_tracepoint()) {
    d = software_sampling(s, host, quirks);
  } else {
    d = decide(s.event.spec, s.event.guest, host, quirks);
    if (d.requested == GuestMode::kSplit) {
      d.status = DecisionStatus::kRefused;
      d.counters.clear();
      d.semantics.clear();
      d.reason = std::string("sampling has no split: ") + kGuestSamples + "; use guest: auto, include or exclude";
    }
    merge_split(d);
  }
  if (d.status == DecisionStatus::kRefused || d.status == DecisionStatus::kUnsupported || above_max_rate(d, s, host)) return d;
  for (auto& c : d.counters) set_sampling_attrs(c.attr, s);
  return d;
}

void set_sampling_attrs(perf_event_attr& a, const SamplingConfig& s) {
  a.sample_type = PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_PERIOD;
  if (s.callchain != Callchain::kNone) a.sample_type |= PERF_SAMPLE_CALLCHAIN;
  a.exclude_callchain_user = s.callchain == Callchain::kKernel;
  bool tracepoint = std::holds_alternative<TracepointEvent>(s.event.spec.kind);
  a.freq = !s.period && !(tracepoint && !s.frequency);
  a.sample_period = s.period.value_or(a.freq ? s.frequency.value_or(kDefaultSampleHz) : 1);  // sample_freq shares it
  a.sample_id_all = 1;
  a.use_clockid = 1;  // CLOCK_MONOTONIC times; kernels before 4.1 answer EINVAL and the ladder drops it
  a.clockid = CLOCK_MONOTONIC;
  a.watermark = 1;
  a.wakeup_watermark = static_cast<uint32_t>(s.data_pages() * kRingPageBytes / 2);
  a.disabled = 0;
  a.inherit = 0;
}

}  // namespace kvmprof
