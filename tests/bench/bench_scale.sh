#!/usr/bin/env bash
# Growth curve of the collector on a synthetic inventory: counters, fds, syscalls and CPU per
# cycle as the number of vCPU threads grows. Prints figures; not a pass/fail test. Run as root.
# Usage: bench_scale.sh [BUILD_DIR]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-${BUILD_DIR:-$top/build}}
bin=$build/tests/kvmprof_collector_scale
cycles=20
printf "%-8s %-6s %-9s %-16s %-12s %-16s %-18s\n" threads vms open_fds cpu_ms_per_cycle us_per_thread syscalls_per_cycle syscalls_per_thread
for n in 40 80 160 320 640; do
  line=$("$bin" "$n" "$cycles")
  # Syscalls of the collecting thread per cycle: strace the same run, minus a run of 0 cycles.
  count() { strace -f -c -o /dev/stdout "$bin" "$n" "$1" 2>/dev/null | awk '$NF=="total"{print $4}'; }
  with=$(count "$cycles"); without=$(count 0)
  per_cycle=$(( (with - without) / cycles ))
  set -- $line
  printf "%-8s %-6s %-9s %-16s %-12s %-16s %-18s\n" "$2" "$4" "$6" "$8" "${12}" "$per_cycle" \
    "$(awk -v s="$per_cycle" -v t="$2" 'BEGIN{printf "%.2f", s/t}')"
done
