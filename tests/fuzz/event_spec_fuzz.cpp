// libFuzzer entry for the event spec parser (policy/event_spec.cpp): event_spec_input.h
// describes the input and its checks, README.md how to run it.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/event_spec_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kvmprof::testing::fuzz_event_spec_input(data, size);
  return 0;
}
