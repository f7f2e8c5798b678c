#pragma once
// Vendor event names (INST_RETIRED.ANY_P, RETIRED_INSTRUCTIONS) resolved with libpfm4 into
// raw core events. libpfm4 answers for the CPU it detects on the running host, not for a
// --root fixture.
#include <string>

#include "policy/event_spec.h"

namespace kvmprof {

// Returns the spec with a NamedEvent replaced by the raw event libpfm4 encodes for it; a name
// libpfm4 does not know stays a NamedEvent, which the decision reports as unsupported.
EventSpec resolve_vendor_event(EventSpec spec);

}  // namespace kvmprof
