#!/usr/bin/env bash
# Installs every Debian 12 package kvmprof needs to build, test and run its demo. Idempotent:
# does nothing when all are present. Run as root.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake pkg-config libvirt-dev libboost-dev libyaml-cpp-dev prometheus-cpp-dev libsystemd-dev
  libgtest-dev libpfm4-dev zlib1g-dev libelf-dev libdw-dev libssl-dev libcrypt-dev
  # run: libvirtd + QEMU, perf as a cross-check, tiny boot images need GNU as/ld (binutils)
  libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils binutils linux-perf
  # non-root read-only libvirt: libvirtd asks polkitd over the system bus
  dbus polkitd
  # tests and benchmarks
  python3 curl prometheus prometheus-libvirt-exporter strace procps openssl
  # the Debian package: lintian checks it
  lintian
  # the unit: systemd-analyze security rates it (also where systemd is not PID 1)
  systemd
  # fuzzing: libFuzzer with ASan and UBSan (tests/fuzz/run.sh)
  clang libclang-rt-14-dev
  # profiles: go tool pprof reads every profile the tests make, chromium screenshots flame graphs
  golang-go chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Keep Debian's service starters quiet where no init system runs (containers, CI).
apt-get install -y -qq "${missing[@]}" >/dev/null
echo "install-deps: done"
