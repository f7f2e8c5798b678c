// libFuzzer entry for the web config parser (policy/web_config.cpp): web_config_input.h
// describes the input and its checks, README.md how to run it.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/web_config_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kvmprof::testing::fuzz_web_config_input(data, size);
  return 0;
}
