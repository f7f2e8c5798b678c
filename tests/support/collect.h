#pragma once
// Collector cycles in tests: with a fresh libvirt answer, or while libvirt does not answer.
#include <vector>

#include "agent/collect/collector.h"

namespace kvmprof::testing {

inline Snapshot collect(Collector& c, std::vector<DomainRecord> domains,
                        Collector::Clock::time_point now = Collector::Clock::now()) {
  return c.collect(&domains, true, now);
}

inline Snapshot collect_without_libvirt(Collector& c, Collector::Clock::time_point now = Collector::Clock::now()) {
  return c.collect(nullptr, false, now);
}

}  // namespace kvmprof::testing
