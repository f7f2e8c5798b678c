#!/usr/bin/env bash
# Installs, builds and runs every test: unit tests and the end-to-end test with real
# libvirtd, QEMU VMs, Prometheus and perf. Run as root on Debian 12.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bash "$top/deploy/install-deps.sh"
bash "$top/deploy/build.sh"
bash "$top/deploy/libvirt-up.sh"
cd "${BUILD_DIR:-$top/build}"
ctest --output-on-failure --timeout 900
