// A second shared library, with a build-id of its own, for the cache eviction test.
extern "C" __attribute__((noinline)) int symtest_other_gamma(int x) { return x * 11 + 5; }
