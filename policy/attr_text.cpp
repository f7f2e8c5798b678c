#include "policy/attr_text.h"

#include <cstdio>
#include <utility>

namespace kvmprof {

std::string sample_type_names(uint64_t t) {
  const std::pair<uint64_t, const char*> names[] = {
      {PERF_SAMPLE_IDENTIFIER, "IDENTIFIER"}, {PERF_SAMPLE_IP, "IP"},     {PERF_SAMPLE_TID, "TID"},
      {PERF_SAMPLE_TIME, "TIME"},             {PERF_SAMPLE_ID, "ID"},     {PERF_SAMPLE_CPU, "CPU"},
      {PERF_SAMPLE_PERIOD, "PERIOD"},         {PERF_SAMPLE_CALLCHAIN, "CALLCHAIN"}};
  std::string out;
  for (auto [bit, name] : names) {
    if (t & bit) out += (out.empty() ? "" : "|") + std::string(name);
  }
  return out;
}

std::string attr_summary(const perf_event_attr& a) {
  char config[24];
  std::snprintf(config, sizeof config, "0x%llx", static_cast<unsigned long long>(a.config));
  std::string out = "type=" + std::to_string(a.type) + " config=" + config + " exclude_guest=" +
                    std::to_string(a.exclude_guest) + " exclude_host=" + std::to_string(a.exclude_host) +
                    " precise_ip=" + std::to_string(a.precise_ip);
  if (a.exclude_user) out += " exclude_user=1";
  if (a.exclude_kernel) out += " exclude_kernel=1";
  if (!a.sample_type) return out;
  out += " sample_type=" + sample_type_names(a.sample_type) + " freq=" + std::to_string(a.freq) +
         (a.freq ? " sample_freq=" : " sample_period=") + std::to_string(a.sample_period) +
         " sample_id_all=" + std::to_string(a.sample_id_all);
  if (a.exclude_callchain_user) out += " exclude_callchain_user=1";
  if (a.use_clockid) out += " use_clockid=1 clockid=" + std::to_string(a.clockid);
  return out;
}

}  // namespace kvmprof
