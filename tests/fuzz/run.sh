#!/bin/sh
# Builds the ring fuzzer (libFuzzer + ASan + UBSan, clang only) in build-fuzz and runs it for
# $1 seconds (default 60) on a working copy of the seed corpus. Crashes land in
# build-fuzz/crashes/. Needs clang and libFuzzer, on Debian 12:
#   apt-get install -y clang libclang-rt-14-dev
set -eu
seconds=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build-fuzz

if ! command -v clang++ >/dev/null; then
  echo "clang++ not found: apt-get install -y clang libclang-rt-14-dev" >&2
  exit 2
fi
# Configuring needs the project's dependencies; only the fuzz target's own sources are built.
cmake -S "$root" -B "$build" -DKVMPROF_FUZZ=ON -DKVMPROF_BUILD_TESTS=ON -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build "$build" --target kvmprof_ring_fuzz -j 1

# The fuzzer adds the inputs it finds to the working copy; the seeds in the tree stay as they are.
corpus=$build/ring-corpus
mkdir -p "$corpus" "$build/crashes"
cp "$root"/tests/fuzz/corpus/ring/* "$corpus"/
# -max_len: the 64-byte header plus two data pages (tests/fuzz/ring_input.h).
exec "$build/tests/fuzz/kvmprof_ring_fuzz" -max_total_time="$seconds" -max_len=8256 \
  -artifact_prefix="$build/crashes/" -print_final_stats=1 "$corpus"
