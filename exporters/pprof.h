#pragma once
// The pprof rendering of a Profile: the bytes of google/pprof's profile.proto, what `go tool
// pprof`, Parca and Grafana Pyroscope read. Uncompressed: the HTTP layer gzips it (on disk and
// on the wire pprof expects gzip). Pure: it reads the profile only.
#include <string>

#include "exporters/profile.h"

namespace kvmprof {

// A CPU profile: sample_type [samples/count, cpu/nanoseconds], period_type cpu/nanoseconds.
// Mapping and location ids are the 1-based indexes of the profile, so the profile's indexes
// must be in range (the profile builder makes them so).
std::string encode_pprof(const Profile& profile);

}  // namespace kvmprof
