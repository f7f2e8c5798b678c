// A static executable without libc, so without .dynsym: stripped, it has no symbol table at
// all. It is only read, never run.
extern "C" void _start() { __builtin_trap(); }
