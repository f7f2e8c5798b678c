#include "agent/system/open_ladder.h"

#include <sys/resource.h>

#include "agent/system/perf_group.h"

namespace kvmprof {
namespace {

constexpr int kMaxSteps = 8;

bool raise_nofile_once() {
  static bool raised = false;
  rlimit lim{};
  if (raised || ::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= lim.rlim_max) return false;
  raised = true;
  lim.rlim_cur = lim.rlim_max;
  return ::setrlimit(RLIMIT_NOFILE, &lim) == 0;
}

void stop(LadderOutcome& out, DecisionStatus status, std::string reason) {
  out.status = status;
  out.reason = std::move(reason);
}

std::string permission_reason(const HostModel& host, int err) {
  return errno_name(err) + ": needs CAP_PERFMON (Linux 5.8 or later; or CAP_SYS_ADMIN), or a lower "
         "/proc/sys/kernel/perf_event_paranoid (now " + std::to_string(host.perf_event_paranoid) +
         "; 2 forbids kernel counting for unprivileged users); run the agent as root or grant the capability";
}

// One rung: returns true when the attr was changed and the open should be tried again.
bool step(LadderOutcome& out, const Decision& d, int err, const HostModel& host) {
  perf_event_attr& a = out.attr;
  bool has_bits = a.exclude_guest || a.exclude_host;
  if (err == E2BIG && a.size < sizeof(a) && a.size >= PERF_ATTR_SIZE_VER5) {
    out.steps.push_back({"attr_size", err, "attr size renegotiated to " + std::to_string(a.size), ""});
    return true;
  }
  // Newer attr features first: a kernel without them answers EINVAL for a reserved bit, and the
  // exclude bits must not be dropped for that.
  if (err == EINVAL && a.use_clockid) {  // added in 4.1 (commit 34f439278cef)
    a.use_clockid = 0;
    a.clockid = 0;
    out.steps.push_back({"no_clockid", err, "dropped use_clockid: sample times stay in perf's clock, not CLOCK_MONOTONIC", ""});
    return true;
  }
  if (err == EINVAL && (a.sample_type & PERF_SAMPLE_IDENTIFIER)) {  // added in 3.12 (commit ff3d527cebc1)
    a.sample_type = (a.sample_type & ~uint64_t{PERF_SAMPLE_IDENTIFIER}) | PERF_SAMPLE_ID;
    out.steps.push_back({"no_sample_identifier", err, "replaced PERF_SAMPLE_IDENTIFIER by PERF_SAMPLE_ID", ""});
    return true;
  }
  if (err == EINVAL && has_bits) {
    if (a.precise_ip > 0 && host.cpu.vendor == Vendor::kIntel) {
      // Without exclude bits a precise event includes the guest; on kernels this old (before
      // 26a4f3c08de4) host PEBS wrote through guest addresses and corrupted guest memory.
      stop(out, DecisionStatus::kRefused, "this kernel has no exclude_guest, and a precise event that includes "
                                          "guests corrupted guest memory on such kernels; not opened "
                                          "[kernel-before-exclude-bits, intel-pebs-host-only]");
      return false;
    }
    if (!d.may_drop_exclude_bits) {
      stop(out, DecisionStatus::kRefused, "the kernel or PMU rejects exclude_guest/exclude_host (EINVAL), so the "
                                          "explicit guest setting cannot be met [kernel-before-exclude-bits]");
      return false;
    }
    a.exclude_guest = a.exclude_host = 0;
    out.mode = "all";
    out.steps.push_back({"drop_exclude_bits", err, "dropped exclude_guest/exclude_host: counting host and guest together",
                         "kernel-before-exclude-bits"});
    return true;
  }
  if (err == EOPNOTSUPP && a.precise_ip > 0) {
    if (!a.exclude_guest && !d.explicit_request) {
      a.exclude_guest = 1;
      out.mode = "host";
      out.steps.push_back({"set_exclude_guest", err, "set exclude_guest: this kernel refuses precise events that include the guest",
                           "kernel-precise-needs-exclude-guest"});
      return true;
    }
    if (d.may_lower_precise) {
      --a.precise_ip;
      out.steps.push_back({"lower_precise", err, "lowered precise_ip to " + std::to_string(a.precise_ip), ""});
      return true;
    }
    stop(out, DecisionStatus::kRefused, "the kernel refuses precise_ip " + std::to_string(a.precise_ip) +
                                            " (EOPNOTSUPP); ask a lower level or P");
    return false;
  }
  if (err == EMFILE && raise_nofile_once()) {
    out.steps.push_back({"raise_nofile", err, "raised RLIMIT_NOFILE to the hard limit", ""});
    return true;
  }
  if (err == ENOENT || err == ENODEV || err == ENXIO || err == EOPNOTSUPP) {
    stop(out, DecisionStatus::kUnsupported, errno_name(err) + ": this kernel or PMU does not support the event");
  } else if (err == EACCES || err == EPERM) {
    stop(out, DecisionStatus::kRefused, permission_reason(host, err));
  } else {
    stop(out, DecisionStatus::kRefused, errno_name(err) + " from perf_event_open");
  }
  return false;
}

}  // namespace

LadderOutcome open_with_ladder(PerfBackend& perf, const Decision& decision, const PlannedCounter& counter,
                               pid_t tid, int cpu, int group_fd, const HostModel& host) {
  LadderOutcome out;
  out.attr = counter.attr;
  out.attr.size = sizeof(out.attr);
  out.mode = counter.mode;
  for (int i = 0; i < kMaxSteps; ++i) {
    out.fd = perf.open(out.attr, tid, cpu, group_fd);
    if (out.fd.ok()) return out;
    if (!step(out, decision, out.fd.error().err, host)) return out;
  }
  stop(out, DecisionStatus::kRefused, "gave up after " + std::to_string(kMaxSteps) + " fallback steps");
  return out;
}

}  // namespace kvmprof

namespace kvmprof {

OpenedDecision open_decision(PerfBackend& perf, const Decision& decision, pid_t tid, int cpu, int group_fd,
                             const HostModel& host) {
  OpenedDecision out{{}, decision.semantics, decision.status, decision.reason, {}};
  bool merged_to_all = false;
  for (const auto& planned : decision.counters) {
    if (merged_to_all && planned.mode == "guest") continue;
    LadderOutcome o = open_with_ladder(perf, decision, planned, tid, cpu, group_fd, host);
    out.steps.insert(out.steps.end(), o.steps.begin(), o.steps.end());
    if (!o.fd.ok()) {
      out.counters.clear();
      out.semantics.clear();
      out.status = o.status;
      out.reason = o.reason;
      return out;
    }
    if (o.mode != planned.mode) {
      merged_to_all = merged_to_all || o.mode == "all";
      out.semantics = o.mode;
      out.status = DecisionStatus::kDegraded;
      const LadderStep& last = o.steps.back();
      out.reason = last.action + (last.quirk.empty() ? "" : " [" + last.quirk + "]");
    }
    out.counters.push_back({o.mode, planned.pmu, o.attr, std::move(*o.fd)});
  }
  return out;
}

}  // namespace kvmprof
