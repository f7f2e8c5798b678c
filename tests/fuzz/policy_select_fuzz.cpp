// libFuzzer entry for the policy selection from libvirt's answers (policy/policy_select.cpp):
// policy_select_input.h describes the input and its checks, README.md how to run it.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/policy_select_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kvmprof::testing::fuzz_policy_select_input(data, size);
  return 0;
}
