// libFuzzer entry for the quirk table parser (policy/quirk_table.cpp): quirk_table_input.h
// describes the input and its checks, README.md how to run it.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/quirk_table_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kvmprof::testing::fuzz_quirk_table_input(data, size);
  return 0;
}
