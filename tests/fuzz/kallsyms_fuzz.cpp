// libFuzzer entry for the /proc/kallsyms parser (agent/symbols/kallsyms.cpp): kallsyms_input.h
// describes the input and its checks, README.md how to run it.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/kallsyms_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kvmprof::testing::fuzz_kallsyms_input(data, size);
  return 0;
}
