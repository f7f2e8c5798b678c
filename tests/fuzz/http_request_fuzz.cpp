// libFuzzer entry for the HTTP server's request reading (agent/http/http_request.h):
// http_request_input.h describes the input and its checks, README.md how to run it.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/http_request_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kvmprof::testing::fuzz_http_request_input(data, size);
  return 0;
}
