#!/usr/bin/env python3
"""Fault matrix (issue 11, section 3), end to end with the real agent, libvirtd and QEMU VMs:
- libvirtd slow: its answers delayed by a throttled unix-socket proxy between the agent and
  libvirtd's read-only socket, then fast again;
- a QEMU process stopped (SIGSTOP) and continued, and killed (SIGKILL) while sampling at 999 Hz
  into small rings, so they are being drained when it dies;
- vCPU hotplug with `virsh setvcpus --live` (up; down where QEMU allows it), and a VM started
  again under the same name and UUID with other vCPU counts.
What must hold: scrapes answer, counters of the live VMs keep advancing, no counter decreases,
no series of a dead VM or vCPU, no fd or mapping leak, kvmprof_libvirt_up says what is true,
and recovery without a restart. libvirtd stopped, killed and restarted are test_libvirt_faults.py.

Usage: test_fault_matrix.py --agent PATH/kvmprof-agent. Needs root (exit 77 = skipped otherwise).
"""
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import harness as h

AGENT = None
INTERVAL = 1.0
LIBVIRT_RO_SOCKET = "/var/run/libvirt/libvirt-sock-ro"


def cpu_seconds(samples, vm, vcpu="0"):
    return sum(v for _, v in h.select(samples, "kvmprof_vcpu_cpu_seconds_total", uuid=vm.uuid, vcpu=vcpu))


def task_clock(samples, vm, vcpu="0"):
    return h.value(samples, "kvmprof_vcpu_events_total", uuid=vm.uuid, vcpu=vcpu, event="task-clock", mode="all")


def vcpus_of(samples, vm, name="kvmprof_vcpu_cpu_seconds_total"):
    return {l["vcpu"] for l, _ in h.select(samples, name, uuid=vm.uuid)}


def timed_snapshot(agent, after):
    """(seconds the scrape took, timestamp, samples) of the next snapshot after `after`; every
    scrape on the way must answer within a second. An early snapshot (published at once when
    libvirt's answer changes) does not read VMs that are not due: a snapshot 1.5 intervals after
    another has at least one full cycle in between."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        s = agent.scrape()
        took = time.monotonic() - t0
        assert took < 1.0, f"a scrape took {took:.2f} s"
        ts = h.value(s, "kvmprof_last_collection_timestamp_seconds")
        if ts > after:
            return took, ts, s
        time.sleep(0.05)
    raise AssertionError("no new snapshot within 10 s")


class SlowProxy:
    """A unix-socket proxy to libvirtd's read-only socket that holds every answer (libvirtd to
    the agent) for `delay` seconds, in order; requests pass at once. The delay applies to bytes
    still held when it changes, so delay = 0 flushes them."""

    def __init__(self, path, target=LIBVIRT_RO_SOCKET):
        self.path, self.target, self.delay, self.connections = path, target, 0.0, 0
        self.closed = False
        self.sockets = []
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(path)
        self.listener.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
                upstream = socket.socket(socket.AF_UNIX)
                upstream.connect(self.target)
            except OSError:
                continue
            self.connections += 1
            self.sockets += [client, upstream]
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._answers, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _requests(client, upstream):
        try:
            while data := client.recv(65536):
                upstream.sendall(data)
            upstream.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _answers(self, upstream, client):
        held = queue.Queue()

        def read():
            while True:
                try:
                    data = upstream.recv(65536)
                except OSError:
                    data = b""
                held.put((time.monotonic(), data))
                if not data:
                    return

        threading.Thread(target=read, daemon=True).start()
        while True:
            arrived, data = held.get()
            while not self.closed and time.monotonic() < arrived + self.delay:
                time.sleep(0.02)
            try:
                if not data:
                    return client.shutdown(socket.SHUT_WR)
                client.sendall(data)
            except OSError:
                return

    def close(self):
        self.closed = True
        for s in [self.listener] + self.sockets:
            s.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


class SlowLibvirtd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="kvmprof-fm-slow-")
        os.chmod(cls.tmp.name, 0o755)
        h.libvirt_up()
        cls.vms = [h.Vm(cls.tmp.name, f"kvmprof-fm-slow-{i}", vcpus=1) for i in (1, 2)]
        cls.late = None
        cls.proxy = SlowProxy(os.path.join(cls.tmp.name, "libvirt.sock"))
        uri = f"qemu+unix:///system?socket={cls.proxy.path}"
        cls.agent = h.Agent(AGENT, cls.tmp.name, interval="1s",
                            extra_config=f'libvirt: {{uri: "{uri}", reconnect_max_backoff: 2s}}\n')
        h.wait_for("both VMs' counters", lambda: all(h.select(cls.agent.scrape(), "kvmprof_vcpu_events_total",
                                                              uuid=vm.uuid, event="task-clock") for vm in cls.vms))

    @classmethod
    def tearDownClass(cls):
        cls.proxy.delay = 0
        code = cls.agent.stop()
        cls.proxy.close()
        for vm in cls.vms + ([cls.late] if cls.late else []):
            vm.destroy()
        cls.tmp.cleanup()
        assert code == 0, f"agent exited {code} on SIGTERM"

    def test_answers_delayed_4_s_for_26_s_then_fast_again(self):
        s = self.agent.scrape()
        self.assertEqual(h.value(s, "kvmprof_libvirt_up"), 1)
        self.assertIn("connected to qemu+unix:///system?socket=", self.agent.log_text())
        pid, connections = self.agent.proc.pid, self.proxy.connections
        self.proxy.delay = 4.0
        start = time.monotonic()
        h.wait_for("libvirt_up 0: no answer within call_timeout (500 ms)",
                   lambda: h.value(self.agent.scrape(), "kvmprof_libvirt_up") == 0, timeout=2 * INTERVAL + 0.5, step=0.02)
        down_at = time.monotonic() - start
        type(self).late = h.Vm(self.tmp.name, "kvmprof-fm-slow-late", vcpus=1)  # started while libvirtd is slow
        late_seen, slowest, down = None, 0.0, 0
        _, ts, last = timed_snapshot(self.agent, 0)
        while time.monotonic() - start < 26:  # a new VM takes about 3 round trips: a poll, the next, its title
            took, ts, now = timed_snapshot(self.agent, ts + 1.5 * INTERVAL)
            slowest = max(slowest, took)
            if h.value(now, "kvmprof_libvirt_up") == 0:
                down += 1
                self.assertFalse(h.select(now, "kvmprof_vcpu_exits_total"), "exit series while libvirt is not answering")
            if late_seen is None and h.select(now, "kvmprof_vm_info", uuid=self.late.uuid):
                late_seen = round(time.monotonic() - start, 1)
            for vm in self.vms:
                self.assertGreater(cpu_seconds(now, vm), cpu_seconds(last, vm), vm.name)
                self.assertGreater(task_clock(now, vm), task_clock(last, vm), vm.name)
            last = now
        self.proxy.delay = 0
        t0 = time.monotonic()
        h.wait_for("libvirt_up 1 once answers are fast", lambda: h.value(self.agent.scrape(), "kvmprof_libvirt_up") == 1,
                   timeout=30)
        recovered = time.monotonic() - t0
        h.wait_for("every VM with its exit series", lambda: all(
            h.select(self.agent.scrape(), "kvmprof_vcpu_exits_total", uuid=vm.uuid, reason="all")
            for vm in self.vms + [self.late]), timeout=10)
        print(f"\n  answers delayed 4 s for 26 s: libvirt_up 0 after {down_at:.2f} s and in {down} of the snapshots "
              f"followed; slowest scrape {slowest * 1000:.0f} ms, every snapshot advanced; a VM started meanwhile "
              f"exported after {late_seen} s; libvirt_up 1 {recovered:.2f} s after the delay went; "
              f"proxy connections {connections} -> {self.proxy.connections}")
        self.assertIsNotNone(late_seen, "a slow libvirtd still answers: the VM started meanwhile was not exported")
        self.assertEqual(self.agent.proc.poll(), None)
        self.assertEqual(self.agent.proc.pid, pid)  # recovered without a restart


QEMU_CONFIG = """policies:
  - name: victim
    match: {domain: "kvmprof-fm-victim*"}
    events: [task-clock]
    sampling: {event: cpu-clock, frequency: 999, threads: all, buffer: 2}
  - name: survivor
    match: {domain: "kvmprof-fm-survivor"}
    events: [task-clock]
    sampling: {event: cpu-clock, frequency: 99, threads: vcpu}
default:
  events: []
"""


class QemuStoppedAndKilled(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="kvmprof-fm-qemu-")
        os.chmod(cls.tmp.name, 0o755)
        h.libvirt_up()
        cls.survivor = h.Vm(cls.tmp.name, "kvmprof-fm-survivor", vcpus=1)
        cls.victim_image = os.path.join(cls.tmp.name, "victim.img")
        h.run(["bash", os.path.join(h.DEPLOY, "make-boot-image.sh"), cls.victim_image, "255"])
        cls.agent = h.Agent(AGENT, cls.tmp.name, interval="1s", extra_config=QEMU_CONFIG)
        h.wait_for("the survivor's samples", lambda: h.select(cls.agent.scrape(), "kvmprof_vcpu_samples_total",
                                                              uuid=cls.survivor.uuid), timeout=20)

    @classmethod
    def tearDownClass(cls):
        code = cls.agent.stop()
        cls.survivor.destroy()
        subprocess.run(h.VIRSH + ["destroy", "kvmprof-fm-victim"], capture_output=True)
        cls.tmp.cleanup()
        assert code == 0, f"agent exited {code} on SIGTERM"

    def victim(self):
        vm = h.Vm(self.tmp.name, "kvmprof-fm-victim", vcpus=1, image=self.victim_image)
        self.addCleanup(vm.destroy)
        h.wait_for("the victim's samples", lambda: h.select(self.agent.scrape(), "kvmprof_vcpu_samples_total",
                                                            uuid=vm.uuid), timeout=20)
        return vm

    def test_1_a_stopped_qemu_keeps_its_series_frozen_and_resumes(self):
        vm = self.victim()
        pid = vm.pid()
        stopped_at = time.time()
        os.kill(pid, signal.SIGSTOP)
        try:
            _, ts, frozen = timed_snapshot(self.agent, stopped_at + 1.5 * INTERVAL)  # a full cycle after the stop
            last, libvirt_down, slowest, start = frozen, 0, 0.0, time.monotonic()
            while time.monotonic() - start < 8:
                took, ts, now = timed_snapshot(self.agent, ts + 1.5 * INTERVAL)
                slowest = max(slowest, took)
                libvirt_down += h.value(now, "kvmprof_libvirt_up") == 0
                self.assertTrue(h.select(now, "kvmprof_vm_info", uuid=vm.uuid), "the stopped VM left the export")
                self.assertEqual(cpu_seconds(now, vm), cpu_seconds(frozen, vm))
                self.assertEqual(task_clock(now, vm), task_clock(frozen, vm))
                self.assertGreater(cpu_seconds(now, self.survivor), cpu_seconds(last, self.survivor))
                last = now
        finally:
            os.kill(pid, signal.SIGCONT)
        t0 = time.monotonic()
        h.wait_for("the continued VM to advance", lambda: cpu_seconds(self.agent.scrape(), vm) > cpu_seconds(frozen, vm),
                   timeout=10)
        print(f"\n  QEMU stopped 8 s: its CPU time frozen at {cpu_seconds(frozen, vm):.3f} s in every snapshot, "
              f"slowest scrape {slowest * 1000:.0f} ms, libvirt_up 0 in {libvirt_down} snapshots; "
              f"advancing {time.monotonic() - t0:.2f} s after SIGCONT")
        h.wait_for("libvirt_up 1", lambda: h.value(self.agent.scrape(), "kvmprof_libvirt_up") == 1, timeout=60)

    def test_2_a_qemu_killed_while_its_rings_drain_leaves_nothing_behind(self):
        pid = self.agent.proc.pid
        vm = self.victim()  # warm up: the first victim allocates what the agent keeps
        vm.destroy()
        h.wait_for("the warm-up victim gone", lambda: f'uuid="{vm.uuid}"' not in self.agent.scrape_text(), timeout=10)
        _, ts, s0 = timed_snapshot(self.agent, 0)
        before = h.agent_footprint(pid)
        ring_bytes = h.value(s0, "kvmprof_sample_ring_bytes")
        gone, uuids = [], []
        for _ in range(3):
            vm = self.victim()
            uuids.append(vm.uuid)
            time.sleep(random.uniform(0, 1))
            self.assertGreater(h.agent_footprint(pid)["rings"], before["rings"])  # the victim's rings are mapped
            _, ts, s = timed_snapshot(self.agent, 0)
            os.kill(vm.pid(), signal.SIGKILL)
            t0 = time.monotonic()
            h.wait_for("the killed VM's series to go", lambda: f'uuid="{vm.uuid}"' not in self.agent.scrape_text(),
                       timeout=2 * INTERVAL + 1, step=0.05)
            gone.append(time.monotonic() - t0)
            _, ts, later = timed_snapshot(self.agent, ts + 1.5 * INTERVAL)
            self.assertGreater(cpu_seconds(later, self.survivor), cpu_seconds(s, self.survivor))
        _, ts, _ = timed_snapshot(self.agent, ts)
        _, ts, s1 = timed_snapshot(self.agent, ts)
        after = h.agent_footprint(pid)
        changed = sorted(set(after["fds"]) ^ set(before["fds"]))
        print(f"\n  3 QEMUs killed while sampling at 999 Hz into 2-page rings: series gone after "
              f"{', '.join(f'{g:.2f}' for g in gone)} s; agent fds {len(before['fds'])} -> {len(after['fds'])} "
              f"(perf {before['perf_fds']} -> {after['perf_fds']}; changed {changed}), maps lines {before['maps']} -> "
              f"{after['maps']}, ring mappings {before['rings']} -> {after['rings']}, RSS {before['rss_kib']} -> "
              f"{after['rss_kib']} KiB")
        text = self.agent.scrape_text()
        for uuid in uuids:
            self.assertNotIn(uuid, text)
        self.assertEqual(after["perf_fds"], before["perf_fds"])
        self.assertEqual(after["rings"], before["rings"])
        self.assertEqual(h.value(s1, "kvmprof_sample_ring_bytes"), ring_bytes)
        self.assertLessEqual(abs(len(after["fds"]) - len(before["fds"])), 2, changed)
        self.assertLessEqual(after["maps"], before["maps"] + 8)
        self.assertLess(after["rss_kib"] - before["rss_kib"], 10 * 1024)
        self.assertFalse(h.select(s1, "kvmprof_discovery_errors_total"))


HOTPLUG_CONFIG = """policies:
  - name: hot
    match: {domain: "kvmprof-fm-hot*"}
    events: [task-clock]
    sampling: {event: cpu-clock, frequency: 99, threads: vcpu}
default:
  events: []
"""
PER_VCPU = ("kvmprof_vcpu_cpu_seconds_total", "kvmprof_vcpu_wait_seconds_total", "kvmprof_vcpu_events_total",
            "kvmprof_vcpu_exits_total")


class VcpuHotplug(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="kvmprof-fm-hot-")
        os.chmod(cls.tmp.name, 0o755)
        h.libvirt_up()
        cls.agent = h.Agent(AGENT, cls.tmp.name, interval="1s", extra_config=HOTPLUG_CONFIG)

    @classmethod
    def tearDownClass(cls):
        code = cls.agent.stop()
        for name in ("kvmprof-fm-hot", "kvmprof-fm-hot-again"):
            subprocess.run(h.VIRSH + ["destroy", name], capture_output=True)
        cls.tmp.cleanup()
        assert code == 0, f"agent exited {code} on SIGTERM"

    def wait_vcpus(self, vm, expected, timeout):
        """Waits until every per-vCPU series of the VM names exactly the vCPUs `expected`; returns
        the seconds it took and the scrape."""
        t0, want = time.monotonic(), {str(i) for i in expected}

        def exact():
            s = self.agent.scrape()
            return s if all(vcpus_of(s, vm, name) == want for name in PER_VCPU) else None
        s = h.wait_for(f"{vm.name}'s vCPUs {sorted(want)}", exact, timeout=timeout, step=0.05)
        return time.monotonic() - t0, s

    def test_1_setvcpus_live_adds_series_and_rings(self):
        vm = h.Vm(self.tmp.name, "kvmprof-fm-hot", vcpus=1, max_vcpus=4)
        self.addCleanup(vm.destroy)
        _, s0 = self.wait_vcpus(vm, [0], timeout=20)
        h.wait_for("vCPU 0's ring", lambda: h.value(self.agent.scrape(), "kvmprof_sample_ring_bytes") > 0)
        one_ring = h.value(self.agent.scrape(), "kvmprof_sample_ring_bytes")
        h.run(h.VIRSH + ["setvcpus", vm.uuid, "3", "--live"])
        took, s = self.wait_vcpus(vm, [0, 1, 2], timeout=3 * INTERVAL + 2)  # found, then counted a cycle later
        self.assertEqual(h.value(s, "kvmprof_vm_threads_mapped", uuid=vm.uuid), 1)
        self.assertGreaterEqual(cpu_seconds(s, vm), cpu_seconds(s0, vm))
        h.wait_for("a ring per vCPU", lambda: h.value(self.agent.scrape(), "kvmprof_sample_ring_bytes") == 3 * one_ring,
                   timeout=2 * INTERVAL + 1)
        print(f"\n  setvcpus 1 -> 3 --live: vCPUs 1 and 2 exported after {took:.2f} s, ring bytes {one_ring:.0f} -> "
              f"{3 * one_ring:.0f}")
        down = subprocess.run(h.VIRSH + ["setvcpus", vm.uuid, "1", "--live"], capture_output=True, text=True)
        if down.returncode == 0:
            took, _ = self.wait_vcpus(vm, [0], timeout=2 * INTERVAL + 2)
            print(f"  setvcpus 3 -> 1 --live: vCPUs 1 and 2 gone after {took:.2f} s")
        else:  # the boot-sector guest has no ACPI: QEMU refuses to unplug; nothing changed
            time.sleep(2 * INTERVAL)
            s = self.agent.scrape()
            self.assertEqual([vcpus_of(s, vm, name) for name in PER_VCPU], [{"0", "1", "2"}] * len(PER_VCPU))
            print(f"  setvcpus 3 -> 1 --live refused ({down.stderr.strip()[:110]}): vCPUs 0-2 stay exported")

    def test_2_same_name_and_uuid_restarted_with_other_vcpu_counts(self):
        """Here the agent sees the QEMU process exit between the two starts: the series go and come
        back with the new vCPUs only. Followed snapshot by snapshot, vCPU 0's CPU time never goes
        down while the VM stays exported (after a gap, Prometheus sees a new series)."""
        image = os.path.join(self.tmp.name, "again.img")
        h.run(["bash", os.path.join(h.DEPLOY, "make-boot-image.sh"), image, "64"])
        vm = h.Vm(self.tmp.name, "kvmprof-fm-hot-again", vcpus=3, image=image)
        self.addCleanup(vm.destroy)
        self.wait_vcpus(vm, [0, 1, 2], timeout=20)
        trace, stop = [], threading.Event()  # (snapshot time, exported, vCPU 0 CPU time), one per snapshot

        def follow():
            while not stop.is_set():
                s = self.agent.scrape()
                ts = h.value(s, "kvmprof_last_collection_timestamp_seconds")
                if not trace or trace[-1][0] != ts:
                    trace.append((ts, bool(h.select(s, "kvmprof_vm_info", uuid=vm.uuid)), cpu_seconds(s, vm)))
                time.sleep(0.02)
        follower = threading.Thread(target=follow)
        follower.start()
        try:
            for vcpus in (1, 2):
                before = cpu_seconds(self.agent.scrape(), vm)
                vm.destroy()
                again = h.Vm(self.tmp.name, vm.name, vcpus=vcpus, uuid=vm.uuid, image=image)
                self.assertEqual(again.uuid, vm.uuid)
                took, s = self.wait_vcpus(vm, range(vcpus), timeout=2 * INTERVAL + 3)
                self.assertEqual(len(h.select(s, "kvmprof_vm_info", uuid=vm.uuid)), 1)
                self.assertEqual(h.value(s, "kvmprof_vm_threads_mapped", uuid=vm.uuid), 1)
                self.assertFalse([l for l, _ in h.select(s, "kvmprof_vcpu_samples_total", uuid=vm.uuid)
                                  if int(l["vcpu"]) >= vcpus], "samples of a vCPU the VM no longer has")
                time.sleep(2 * INTERVAL)
                s = self.agent.scrape()
                self.assertEqual(vcpus_of(s, vm), {str(i) for i in range(vcpus)})  # and no stale one later
                print(f"\n  same name and UUID started again with {vcpus} vCPU(s): exactly vCPUs 0-{vcpus - 1} "
                      f"after {took:.2f} s; vCPU 0 CPU time {before:.3f} -> {cpu_seconds(s, vm):.3f} s")
        finally:
            stop.set()
            follower.join()
        gaps = sum(1 for a, b in zip(trace, trace[1:]) if a[1] and not b[1])
        for a, b in zip(trace, trace[1:]):
            if a[1] and b[1]:
                self.assertGreaterEqual(b[2], a[2], f"vCPU 0's CPU time went down while exported: {a} -> {b}")
        print(f"  {len(trace)} snapshots followed: the VM left the export {gaps} time(s) (its QEMU exited), "
              f"vCPU 0 never went down while exported")


def set_agent(path):
    global AGENT
    AGENT = path


if __name__ == "__main__":
    sys.exit(h.main(set_agent))
