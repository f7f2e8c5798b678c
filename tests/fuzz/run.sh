#!/bin/sh
# Builds the libFuzzer targets (libFuzzer + ASan + UBSan, clang only) in build-fuzz and runs each
# for $1 seconds (default 60) on a working copy of its seed corpus, one after the other; $2 picks
# targets: ring, kallsyms, maps, query, elf, web_config, basic_auth, agent_config, event_spec,
# quirk_table, procfs, policy_select, http_request. Crashes land in build-fuzz/crashes/ (ring) and
# build-fuzz/crashes/<target>/ (the others); README.md says what to do with them. Needs clang and
# libFuzzer, on Debian 12:
#   apt-get install -y clang libclang-rt-14-dev
set -eu
seconds=${1:-60}
all="ring kallsyms maps query elf web_config basic_auth agent_config event_spec quirk_table procfs policy_select http_request"
targets=${2:-$all}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build-fuzz

for t in $targets; do
  case " $all " in
    *" $t "*) ;;
    *) echo "unknown fuzz target '$t' (one of: $all)" >&2; exit 2 ;;
  esac
done
if ! command -v clang++ >/dev/null; then
  echo "clang++ not found: apt-get install -y clang libclang-rt-14-dev" >&2
  exit 2
fi
# Configuring needs the project's dependencies; only the fuzz targets' own sources are built.
cmake -S "$root" -B "$build" -DKVMPROF_FUZZ=ON -DKVMPROF_BUILD_TESTS=ON -DCMAKE_CXX_COMPILER=clang++ >/dev/null
binaries=""
for t in $targets; do binaries="$binaries kvmprof_${t}_fuzz"; done
# shellcheck disable=SC2086 # one --target per fuzzer
cmake --build "$build" -j 1 --target $binaries

failed=""
for t in $targets; do
  # Per target: the longest input worth trying, a dictionary, where crashes go.
  case $t in
    # The 64-byte header plus two data pages (tests/fuzz/ring_input.h).
    ring) options="-max_len=8256"; crashes=$build/crashes ;;
    # A few hundred kallsyms lines, a maps file of a few hundred mappings, an ELF file of 32 KiB.
    kallsyms) options="-max_len=32768 -timeout=30 -dict=$root/tests/fuzz/kallsyms.dict" ;;
    maps) options="-max_len=16384 -timeout=30 -dict=$root/tests/fuzz/maps.dict" ;;
    query) options="-max_len=4096 -timeout=30 -dict=$root/tests/fuzz/query.dict" ;;
    elf) options="-max_len=32768 -timeout=30" ;;
    # A web config of a few KiB; an Authorization header up to the server's header limit.
    web_config) options="-max_len=8192 -timeout=30" ;;
    basic_auth) options="-max_len=8192 -timeout=30" ;;
    # A config of a few policies; one event spec.
    agent_config) options="-max_len=16384 -timeout=30" ;;
    event_spec) options="-max_len=256 -timeout=30" ;;
    # The shipped quirk table is 13 KiB; a /proc file of a thread; selectors and a metadata element.
    quirk_table) options="-max_len=16384 -timeout=30" ;;
    procfs) options="-max_len=4096 -timeout=30" ;;
    policy_select) options="-max_len=4096 -timeout=30" ;;
    # A few pipelined requests, one of them past the header limit (8 KiB).
    http_request) options="-max_len=20000 -timeout=30 -dict=$root/tests/fuzz/http_request.dict" ;;
  esac
  [ "$t" = ring ] || crashes=$build/crashes/$t
  # The fuzzer adds the inputs it finds to the working copy; the seeds in the tree stay as they are.
  corpus=$build/$t-corpus
  mkdir -p "$corpus" "$crashes"
  cp "$root"/tests/fuzz/corpus/"$t"/* "$corpus"/
  echo "== kvmprof_${t}_fuzz: $seconds s" >&2
  # shellcheck disable=SC2086 # $options is a list of flags
  if ! "$build/tests/fuzz/kvmprof_${t}_fuzz" -max_total_time="$seconds" $options \
      -artifact_prefix="$crashes/" -print_final_stats=1 "$corpus"; then
    failed="$failed $t"
  fi
done
if [ -n "$failed" ]; then
  echo "fuzzing found a problem in:$failed (inputs in $build/crashes/)" >&2
  exit 1
fi
