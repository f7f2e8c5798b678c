// libFuzzer entry for the agent config parser (policy/agent_config.cpp, with the event specs it
// holds): agent_config_input.h describes the input and its checks, README.md how to run it.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/agent_config_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kvmprof::testing::fuzz_agent_config_input(data, size);
  return 0;
}
