// libFuzzer entry for the ELF symbol reader (agent/symbols/elf_symbols.cpp, through libelf and
// libdw): elf_input.h describes the input and its checks, README.md how to run it.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/elf_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kvmprof::testing::fuzz_elf_input(data, size);
  return 0;
}
