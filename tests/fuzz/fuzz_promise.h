#pragma once
// fuzz_promise: a broken promise of a parser becomes a crash the fuzzer keeps, with the promise
// printed. Shared by the parser harnesses (kallsyms_input.h, maps_input.h, query_input.h,
// elf_input.h); the ring harness has its own fuzz_check in ring_input.h.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace kvmprof::testing {

[[noreturn]] inline void fuzz_broken_promise(const char* promise, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: broken promise: %s\n", file, line, promise);
  std::abort();
}

// Little-endian 64-bit word at `at` of the input, zeros past its end.
inline uint64_t fuzz_word(std::string_view input, size_t at) {
  unsigned char bytes[8] = {};
  if (at < input.size()) std::memcpy(bytes, input.data() + at, std::min<size_t>(8, input.size() - at));
  uint64_t word = 0;
  for (int i = 7; i >= 0; --i) word = word << 8 | bytes[i];
  return word;
}

}  // namespace kvmprof::testing

#define KVMPROF_FUZZ_PROMISE(cond) \
  ((cond) ? (void)0 : ::kvmprof::testing::fuzz_broken_promise(#cond, __FILE__, __LINE__))
