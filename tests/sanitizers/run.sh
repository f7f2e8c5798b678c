#!/usr/bin/env bash
# Builds kvmprof with sanitizers and runs the unit tests and one end-to-end suite with it. The
# suite is test_profiles.py: real QEMU VMs sampled while the libvirt, loop, sampler and HTTP
# threads all work (profiles built and fetched, a VM destroyed while its profile is asked for).
# Zero reports is the gate: every report is written to a file (log_path), and any file fails.
#
# Usage: tests/sanitizers/run.sh address|thread [SUITE]   (as root, after deploy/install-deps.sh)
#   address: AddressSanitizer (with LeakSanitizer) and UndefinedBehaviorSanitizer, build-asan/
#   thread:  ThreadSanitizer, build-tsan/ (libvirt and GLib races suppressed: tests/sanitizers/tsan.supp)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
kind=${1:?usage: run.sh address|thread [SUITE]}
suite=${2:-test_profiles}
case $kind in
  address) build=$top/build-asan sanitizers="address;undefined" ;;
  thread) build=$top/build-tsan sanitizers=thread ;;
  *) echo "unknown sanitizer '$kind' (address or thread)" >&2; exit 2 ;;
esac

reports=$build/reports
rm -rf "$reports" && mkdir -p "$reports"
common="log_path=$reports/report:print_stacktrace=1"
export ASAN_OPTIONS="$common:halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1"
export LSAN_OPTIONS="suppressions=$top/tests/sanitizers/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="$common:halt_on_error=1"
export TSAN_OPTIONS="$common:suppressions=$top/tests/sanitizers/tsan.supp:second_deadlock_stack=1"

# -O1 and line tables only: half the build time of RelWithDebInfo, and reports still name lines.
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="-O1 -g1" -DKVMPROF_SANITIZE="$sanitizers" >/dev/null
cmake --build "$build" -j "$(nproc)" --target kvmprof-agent kvmprof_unit_tests

status=0
"$build/tests/kvmprof_unit_tests" --gtest_brief=1 || status=$?
(cd "$top/tests/integration" && python3 "$suite.py" --agent "$build/agent/kvmprof-agent") || status=$?

# Reports of programs the suite runs that are not ours (none is built with sanitizers) cannot
# appear; every file here is a kvmprof report.
if compgen -G "$reports/*" >/dev/null; then
  for f in "$reports"/*; do echo "=== $f"; head -c 20000 "$f"; done
  echo "$kind sanitizer: $(ls "$reports" | wc -l) report(s), see above" >&2
  exit 1
fi
[ "$status" -eq 0 ] || { echo "$kind sanitizer build: tests failed (exit $status)" >&2; exit "$status"; }
echo "$kind sanitizer: unit tests and $suite.py passed with no report"
