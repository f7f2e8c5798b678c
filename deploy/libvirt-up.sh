#!/usr/bin/env bash
# Makes sure virtlogd and libvirtd run (with the system D-Bus, for polkit) and tracefs is mounted. Uses systemd when it is the
# init system, otherwise starts the daemons directly (containers, CI machines).
set -euo pipefail

if [ "$(ps -o comm= -p 1)" = systemd ]; then
  systemctl start virtlogd.socket libvirtd.socket libvirtd.service
else
  # libvirtd asks polkitd, over the system D-Bus, whether a non-root client (the agent as user
  # kvmprof) may use its read-only socket, and looks for the bus only when it starts: start the
  # bus first, as a booted host has it, and restart a libvirtd that started without it (its VMs
  # keep running).
  if ! pgrep -x dbus-daemon >/dev/null; then
    mkdir -p /run/dbus
    rm -f /run/dbus/pid /run/dbus/system_bus_socket  # left by one that was killed
    dbus-daemon --system --fork
    if pgrep -x libvirtd >/dev/null; then
      pkill -x libvirtd
      for _ in $(seq 50); do pgrep -x libvirtd >/dev/null || break; sleep 0.2; done
      if pgrep -x libvirtd >/dev/null; then echo "libvirt-up: libvirtd did not stop for its restart" >&2; exit 1; fi
    fi
  fi
  pgrep -x virtlogd >/dev/null || virtlogd -d
  pgrep -x libvirtd >/dev/null || libvirtd -d
fi
for _ in $(seq 50); do
  virsh -c qemu:///system version >/dev/null 2>&1 && break
  sleep 0.2
done
virsh -c qemu:///system version >/dev/null
# kvm tracepoints need tracefs; the agent reports them unavailable without it.
if [ -d /sys/kernel/tracing ] && [ ! -e /sys/kernel/tracing/events ]; then
  mount -t tracefs nodev /sys/kernel/tracing || echo "libvirt-up: could not mount tracefs" >&2
fi
echo "libvirt-up: libvirtd is running"
