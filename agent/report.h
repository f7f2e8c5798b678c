#pragma once
// Text and JSON renderings for `kvmprof-agent probe` and `explain`.
#include <linux/perf_event.h>

#include <string>

#include "agent/system/host_probe.h"
#include "agent/system/open_ladder.h"
#include "policy/decision.h"
#include "policy/host_model.h"
#include "policy/quirk_table.h"

namespace kvmprof {

// perf_event_attr with perf stat -vv's field names, non-zero fields only.
std::string format_attr(const perf_event_attr& attr);
// `ring`: what a sampling ring offers, on the live host only.
std::string format_host(const HostModel& host, const QuirkTable& quirks, const RingProbe* ring = nullptr);
std::string format_host_json(const HostModel& host, const QuirkTable& quirks, const RingProbe* ring = nullptr);
// The decision; `opened` (may be null) is what the kernel accepted through the ladder.
// `sampling`: a sampling event's decision, whose samples say themselves where they were taken.
std::string format_decision(const Decision& d, const OpenedDecision* opened, bool sampling = false);

std::string json_string(std::string_view s);

}  // namespace kvmprof
