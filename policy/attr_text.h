#pragma once
// perf_event_attr as text, with perf's field names: for `explain` and kvmprof_event_info.
#include <linux/perf_event.h>

#include <cstdint>
#include <string>

namespace kvmprof {

// "IDENTIFIER|IP|TID|TIME|PERIOD|CALLCHAIN"
std::string sample_type_names(uint64_t sample_type);
// One line of the fields that decide what is counted or sampled, e.g. "type=1 config=0x0
// exclude_guest=0 exclude_host=0 precise_ip=0 sample_type=IP|TID freq=1 sample_freq=99 sample_id_all=1".
std::string attr_summary(const perf_event_attr& attr);

}  // namespace kvmprof
