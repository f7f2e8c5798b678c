#!/usr/bin/env python3
"""libvirt must never stop measurement: the real agent, two real QEMU VMs and a real libvirtd
that is stopped with SIGSTOP for 30 s, then killed with SIGKILL and started again.

Usage: test_libvirt_faults.py --agent PATH/kvmprof-agent. Needs root (exit 77 = skipped otherwise).
"""
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import harness as h

AGENT = None
INTERVAL = 1.0
CONFIG = "libvirt: {reconnect_max_backoff: 2s}\n"


def libvirtd_pid():
    out = subprocess.run(["pgrep", "-x", "libvirtd"], capture_output=True, text=True).stdout.split()
    if len(out) != 1:
        raise AssertionError(f"expected one libvirtd, found {out}")
    return int(out[0])


def cpu_seconds(samples, vm):
    return sum(v for _, v in h.select(samples, "kvmprof_vcpu_cpu_seconds_total", uuid=vm.uuid, vcpu="0"))


def task_clock(samples, vm):
    return h.value(samples, "kvmprof_vcpu_events_total", uuid=vm.uuid, vcpu="0", event="task-clock", mode="all")


class LibvirtFaults(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="kvmprof-faults-")
        os.chmod(cls.tmp.name, 0o755)
        h.libvirt_up()
        cls.vms = [h.Vm(cls.tmp.name, f"kvmprof-fault-{i}", vcpus=1) for i in (1, 2)]
        cls.agent = h.Agent(AGENT, cls.tmp.name, interval="1s", extra_config=CONFIG)
        h.wait_for("both VMs' counters", lambda: all(h.select(cls.agent.scrape(), "kvmprof_vcpu_events_total",
                                                                  uuid=vm.uuid, event="task-clock") for vm in cls.vms))

    @classmethod
    def tearDownClass(cls):
        try:
            os.kill(libvirtd_pid(), signal.SIGCONT)
        except (AssertionError, ProcessLookupError):
            pass
        h.libvirt_up()
        code = cls.agent.stop()
        for vm in cls.vms:
            vm.destroy()
        cls.tmp.cleanup()
        assert code == 0, f"agent exited {code} on SIGTERM"

    def assert_measuring(self, seconds, expect_libvirt_down_within=None):
        """Follows the snapshots for `seconds`: each VM's CPU time and task-clock grow from one
        interval to the next (an early snapshot, published at once when libvirt's state changes,
        does not read VMs that are not due). Checks how soon libvirt_up was first 0."""
        start = time.monotonic()
        down_at = None
        ts, last = self.agent.next_snapshot()
        slowest = 0.0
        while time.monotonic() - start < seconds:
            t0 = time.monotonic()
            ts, now = self.agent.next_snapshot(after=ts + 0.9 * INTERVAL)
            slowest = max(slowest, time.monotonic() - t0)
            if down_at is None and h.value(now, "kvmprof_libvirt_up") == 0:
                down_at = time.monotonic() - start
            for vm in self.vms:
                self.assertGreater(cpu_seconds(now, vm), cpu_seconds(last, vm), vm.name)
                self.assertGreater(task_clock(now, vm), task_clock(last, vm), vm.name)
            last = now
        if expect_libvirt_down_within is not None:
            self.assertIsNotNone(down_at, "kvmprof_libvirt_up never turned 0")
            self.assertLessEqual(down_at, expect_libvirt_down_within)
        print(f"\n  {seconds:.0f} s: a new snapshot every interval, slowest wait {slowest:.2f} s; "
              f"libvirt_up 0 after {down_at} s")
        return last

    def test_1_libvirtd_stopped_for_30_s(self):
        workdir = os.path.join(self.tmp.name, "second")  # a second agent, to be stopped while libvirtd is
        os.makedirs(workdir)
        second = h.Agent(AGENT, workdir, interval="1s", extra_config=CONFIG)
        h.wait_for("the second agent's VMs", lambda: all(h.select(second.scrape(), "kvmprof_vm_info", uuid=vm.uuid)
                                                         for vm in self.vms))
        pid = libvirtd_pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            h.wait_for("libvirt_up 0 within two intervals",
                       lambda: h.value(self.agent.scrape(), "kvmprof_libvirt_up") == 0, timeout=2 * INTERVAL, step=0.05)
            print(f"\n  libvirtd stopped: kvmprof_libvirt_up 0 after {time.monotonic() - t0:.2f} s")
            last = self.assert_measuring(30)
            self.assertFalse(h.select(last, "kvmprof_vcpu_exits_total"))  # not live, no series
            for vm in self.vms:
                self.assertTrue(h.select(last, "kvmprof_vm_info", uuid=vm.uuid))
            t0 = time.monotonic()
            code = second.stop()
            took = time.monotonic() - t0
            print(f"  SIGTERM with libvirtd stopped: exit {code} after {took:.2f} s")
            self.assertLess(took, 2.0)
        finally:
            os.kill(pid, signal.SIGCONT)
        h.wait_for("libvirt_up 1 after SIGCONT", lambda: h.value(self.agent.scrape(), "kvmprof_libvirt_up") == 1,
                   timeout=30)
        h.wait_for("the exit series back", lambda: all(h.select(self.agent.scrape(), "kvmprof_vcpu_exits_total",
                                                                uuid=vm.uuid, reason="all") for vm in self.vms), timeout=10)
        self.assertEqual(self.agent.proc.poll(), None)  # recovered without a restart

    def test_2_libvirtd_killed_then_a_qemu_dies_then_libvirtd_returns(self):
        os.kill(libvirtd_pid(), signal.SIGKILL)
        h.wait_for("libvirtd gone", lambda: subprocess.run(["pgrep", "-x", "libvirtd"]).returncode != 0)
        self.assert_measuring(5, expect_libvirt_down_within=2 * INTERVAL + 0.5)
        victim = self.vms[1]
        os.kill(victim.pid(), signal.SIGKILL)  # its QEMU dies while libvirt cannot tell us
        start = time.monotonic()
        h.wait_for("the dead VM's series to go", lambda: f'uuid="{victim.uuid}"' not in self.agent.scrape_text(),
                   timeout=2 * INTERVAL + 1)
        print(f"\n  VM gone {time.monotonic() - start:.2f} s after its QEMU was killed, libvirtd down")
        s = self.agent.scrape()
        self.assertTrue(h.select(s, "kvmprof_vm_info", uuid=self.vms[0].uuid))
        self.assertFalse(h.select(s, "kvmprof_discovery_errors_total"))
        h.libvirt_up()
        h.wait_for("libvirt_up 1", lambda: h.value(self.agent.scrape(), "kvmprof_libvirt_up") == 1, timeout=30)
        _, s = self.agent.next_snapshot()
        self.assertTrue(h.select(s, "kvmprof_vm_info", uuid=self.vms[0].uuid))
        self.assertFalse(h.select(s, "kvmprof_vm_info", uuid=victim.uuid))
        self.assertFalse(h.select(s, "kvmprof_discovery_errors_total"))


def set_agent(path):
    global AGENT
    AGENT = path


if __name__ == "__main__":
    sys.exit(h.main(set_agent))
