// libFuzzer entry for the perf ring reader and record decoder: ring_input.h describes the
// input, README.md how to run it.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/ring_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kvmprof::testing::fuzz_ring_input(data, size);
  return 0;
}
