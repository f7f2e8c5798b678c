// libFuzzer entry for the /proc/PID/maps parser (agent/symbols/proc_maps.cpp): maps_input.h
// describes the input and its checks, README.md how to run it.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/maps_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kvmprof::testing::fuzz_maps_input(data, size);
  return 0;
}
