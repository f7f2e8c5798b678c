// A shared library with known function names for the symbolization tests: a C name and a C++
// name (to be demangled). The bodies differ, so no optimizer folds two functions into one.
extern "C" __attribute__((noinline)) int symtest_lib_alpha(int x) { return x * 3 + 1; }

extern "C" __attribute__((noinline)) int symtest_lib_beta(int x) { return x * 7 - 2; }

namespace symtest {

__attribute__((noinline)) int spin(int n) {
  int total = 0;
  for (int i = 0; i < n; ++i) total += i * symtest_lib_beta(i);
  return total;
}

}  // namespace symtest

// Hand-written assembly often has no .size: symtest_lib_unsized covers up to the next symbol
// (16 bytes), symtest_lib_sized only its one byte.
asm(R"(
  .text
  .globl symtest_lib_unsized
  .type symtest_lib_unsized, @function
symtest_lib_unsized:
  ret
  .p2align 4, 0xcc
  .globl symtest_lib_sized
  .type symtest_lib_sized, @function
symtest_lib_sized:
  ret
  .size symtest_lib_sized, 1
  .p2align 4, 0xcc
)");
