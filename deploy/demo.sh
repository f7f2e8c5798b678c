#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine, as root: install, build, start libvirtd if none
# runs, boot a small demo VM (a boot image made here; KVM if it works, TCG otherwise), and run
# kvmprof-agent with config/agent.yaml in the background on :9477.
# `deploy/demo.sh stop` stops the agent and the demo VM.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
state=/var/tmp/kvmprof-demo
vm=kvmprof-demo

stop() {
  if [ -f "$state/agent.pid" ]; then kill "$(cat "$state/agent.pid")" 2>/dev/null || true; fi
  rm -f "$state/agent.pid"
  virsh -q -c qemu:///system destroy "$vm" >/dev/null 2>&1 || true
  echo "demo: stopped"
}
if [ "${1:-}" = stop ]; then stop; exit 0; fi

bash "$top/deploy/install-deps.sh"
bash "$top/deploy/build.sh"
bash "$top/deploy/libvirt-up.sh"
mkdir -p "$state"
stop >/dev/null
bash "$top/deploy/make-boot-image.sh" "$state/$vm.img" 64
bash "$top/deploy/start-vm.sh" "$vm" "$state/$vm.img" 2
nohup "$top/build/agent/kvmprof-agent" --config "$top/config/agent.yaml" >"$state/agent.log" 2>&1 &
echo $! > "$state/agent.pid"
for _ in $(seq 50); do
  curl -sf localhost:9477/metrics 2>/dev/null | grep -q 'kvmprof_vm_info{domain="kvmprof-demo"' && break
  sleep 0.2
done
cat <<MSG

kvmprof-agent is running (pid $(cat "$state/agent.pid"), log $state/agent.log).
  curl -s localhost:9477/metrics | grep kvmprof_vcpu
  $top/build/agent/kvmprof-agent --help
Stop the agent and the demo VM with: $top/deploy/demo.sh stop
MSG
sleep 6  # one more cycle, so the first samples are drained and counted
curl -sf localhost:9477/metrics | grep -E '^kvmprof_(vm_info|vcpu_cpu_seconds_total|vcpu_samples_total)' | head -12
# The demo VM's flame graph of the last 10 s, as an operator would make it.
"$top/build/agent/kvmprof-agent" profile --config "$top/config/agent.yaml" --domain "$vm" --seconds 10 \
  --format svg -o "$state/$vm.svg"
echo "Open $state/$vm.svg in a browser: the demo VM's CPU, frame by frame."
