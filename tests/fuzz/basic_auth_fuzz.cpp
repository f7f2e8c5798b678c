// libFuzzer entry for the Authorization header parser (agent/http/basic_auth.cpp):
// basic_auth_input.h describes the input and its checks, README.md how to run it.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/basic_auth_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kvmprof::testing::fuzz_basic_auth_input(data, size);
  return 0;
}
