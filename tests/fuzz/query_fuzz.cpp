// libFuzzer entry for the HTTP query parser of /debug/pprof/* (agent/http/query.cpp):
// query_input.h describes the input and its checks, README.md how to run it.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/query_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kvmprof::testing::fuzz_query_input(data, size);
  return 0;
}
