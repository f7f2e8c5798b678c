#!/usr/bin/env bash
# Scale of the agent on one machine. Prints figures; not a pass/fail test. Run as root.
# Usage: bench_scale.sh [BUILD_DIR] [bench_scale.py options]
#   The scale table: the real daemon on a synthetic host of 10, 100 and 1,000 VMs x 4 vCPUs
#   (kvmprof_synthetic_host), measured from outside; see bench_scale.py.
# Usage: bench_scale.sh --collector [BUILD_DIR]
#   The collector alone on 40 to 640 vCPU threads (kvmprof_collector_scale): counters, fds,
#   CPU and syscalls per cycle and per thread.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
if [[ ${1:-} != --collector ]]; then
  build=${BUILD_DIR:-$top/build}
  if [[ $# -gt 0 && $1 != -* ]]; then build=$1; shift; fi
  exec python3 "$top/tests/bench/bench_scale.py" --build "$build" "$@"
fi
build=${2:-${BUILD_DIR:-$top/build}}
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
