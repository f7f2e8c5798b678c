#pragma once
// The clocks samples and profiles are stamped with, in nanoseconds.
#include <time.h>

#include <cstdint>

namespace kvmprof {

inline uint64_t clock_ns(clockid_t clock) {
  timespec t{};
  ::clock_gettime(clock, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(t.tv_nsec);
}

// CLOCK_MONOTONIC: what samples are stamped with where the kernel takes use_clockid.
inline uint64_t monotonic_ns() { return clock_ns(CLOCK_MONOTONIC); }

}  // namespace kvmprof
