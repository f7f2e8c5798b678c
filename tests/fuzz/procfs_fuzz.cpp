// libFuzzer entry for the /proc parsers (agent/system/procfs.cpp): procfs_input.h
// describes the input and its checks, README.md how to run it.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/procfs_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kvmprof::testing::fuzz_procfs_input(data, size);
  return 0;
}
