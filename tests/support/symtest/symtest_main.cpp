// A PIE executable for the symbolization tests: prints the runtime address of a known function,
// then waits until its stdin closes, so a test can name that address through /proc/PID/maps.
#include <cstdio>

extern "C" __attribute__((noinline)) int symtest_main_target(int x) { return x * 5 + 3; }

int main() {
  std::printf("%p\n", reinterpret_cast<void*>(&symtest_main_target));
  std::fflush(stdout);
  int c = 0;
  while ((c = std::getchar()) != EOF) {
  }
  return symtest_main_target(c) == 0 ? 1 : 0;
}
