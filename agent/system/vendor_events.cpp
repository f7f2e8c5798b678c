#include "agent/system/vendor_events.h"

#include <perfmon/pfmlib_perf_event.h>

#include <mutex>

namespace kvmprof {

EventSpec resolve_vendor_event(EventSpec spec) {
  const auto* named = std::get_if<NamedEvent>(&spec.kind);
  if (!named) return spec;
  static std::once_flag once;
  static int init = PFM_SUCCESS;
  std::call_once(once, [] { init = pfm_initialize(); });
  if (init != PFM_SUCCESS) return spec;
  perf_event_attr attr{};
  pfm_perf_encode_arg_t arg{};
  arg.attr = &attr;
  arg.size = sizeof(arg);
  // Privilege levels come from the spec's modifiers, not from libpfm4.
  if (pfm_get_os_event_encoding(named->name.c_str(), PFM_PLM0 | PFM_PLM3, PFM_OS_PERF_EVENT, &arg) != PFM_SUCCESS) {
    return spec;
  }
  spec.kind = CoreEvent{attr.type, attr.config};
  return spec;
}

}  // namespace kvmprof
