#!/usr/bin/env bash
# Builds kvmprof and runs the benchmark against prometheus-libvirt-exporter. Run as root.
# Extra arguments go to bench.py (--vms N, --scrapes N, --seconds S).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
bash "$top/deploy/install-deps.sh"
bash "$top/deploy/build.sh" >/dev/null
exec python3 "$top/tests/bench/bench.py" --agent "${BUILD_DIR:-$top/build}/agent/kvmprof-agent" "$@"
