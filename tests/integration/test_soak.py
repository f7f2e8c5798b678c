#!/usr/bin/env python3
"""Soak (issue 11, section 3): N real VM start/stop cycles with sampling on (cpu-clock at 99 Hz on
every QEMU thread), alternating a 1-vCPU and a 2-vCPU VM. The agent's fds, /proc/PID/maps lines,
perf fds and ring mappings, RSS and series are taken before (after two warm-up cycles) and after
(once two snapshots have passed), and printed at checkpoints so the figures can be quoted: no
growth beyond a small bound, and no series of a VM that is gone.

Usage: test_soak.py --agent PATH/kvmprof-agent [--cycles N]   (or KVMPROF_SOAK_CYCLES=N; default
20, about a minute; the full soak is --cycles 1000). Needs root (exit 77 = skipped otherwise).
"""
import argparse
import atexit
import os
import subprocess
import sys
import tempfile
import time
import unittest

import harness as h

AGENT = None
CYCLES = int(os.environ.get("KVMPROF_SOAK_CYCLES", "20"))
NAMES = ("kvmprof-fm-soak-a", "kvmprof-fm-soak-b")
CONFIG = """policies:
  - name: soak
    match: {domain: "kvmprof-fm-soak-*"}
    events: [task-clock, context-switches]
    sampling: {event: cpu-clock, frequency: 99, threads: all}
default:
  events: []
"""


def destroy_all():
    for name in NAMES:
        subprocess.run(h.VIRSH + ["destroy", name], capture_output=True)


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


class Soak(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="kvmprof-fm-soak-")
        os.chmod(cls.tmp.name, 0o755)
        atexit.register(destroy_all)
        h.libvirt_up()
        cls.images = []
        for name in NAMES:  # one image per name: QEMU locks it while the VM runs
            image = os.path.join(cls.tmp.name, f"{name}.img")
            h.run(["bash", os.path.join(h.DEPLOY, "make-boot-image.sh"), image, "8"])
            cls.images.append(image)
        cls.agent = h.Agent(AGENT, cls.tmp.name, interval="1s", extra_config=CONFIG)
        cls.uuids = set()

    @classmethod
    def tearDownClass(cls):
        code = cls.agent.stop()
        destroy_all()
        cls.tmp.cleanup()
        assert code == 0, f"agent exited {code} on SIGTERM"

    def cycle(self, i):
        """Starts a VM, waits until it is exported (and, briefly, for its samples), destroys it and
        waits until its series are gone. True when its samples showed."""
        uuid = h.create_domain(NAMES[i % 2], self.images[i % 2], vcpus=1 + i % 2)
        self.uuids.add(uuid)
        sampled = False
        try:
            h.wait_for("the VM exported", lambda: h.select(self.agent.scrape(), "kvmprof_vm_info", uuid=uuid),
                       timeout=15, step=0.05)
            try:  # SeaBIOS runs for a while: its samples come within a cycle or two
                h.wait_for("its samples", lambda: h.select(self.agent.scrape(), "kvmprof_vcpu_samples_total", uuid=uuid),
                           timeout=5, step=0.05)
                sampled = True
            except AssertionError:
                pass
        finally:
            subprocess.run(h.VIRSH + ["destroy", uuid], capture_output=True)
        h.wait_for("its series to go", lambda: f'uuid="{uuid}"' not in self.agent.scrape_text(), timeout=10, step=0.05)
        return sampled

    def settle(self):
        ts, _ = self.agent.next_snapshot()
        _, s = self.agent.next_snapshot(after=ts)
        time.sleep(0.5)
        return s

    def figures(self, samples):
        f = h.agent_footprint(self.agent.proc.pid)
        f["series"] = len(samples)
        f["global_series"] = sum(1 for _, labels, _ in samples if "uuid" not in labels)
        f["ours"] = sum(1 for _, labels, _ in samples if labels.get("uuid") in self.uuids)
        f["ring_bytes"] = h.value(samples, "kvmprof_sample_ring_bytes")
        return f

    @staticmethod
    def line(tag, f, extra=""):
        return (f"  {tag}: fds {len(f['fds'])} (perf {f['perf_fds']}), maps {f['maps']} (rings {f['rings']}), "
                f"RSS {f['rss_kib'] / 1024:.1f} MiB, series {f['series']} ({f['global_series']} without a VM, "
                f"{f['ours']} of soak VMs){extra}")

    def test_vm_start_stop_cycles_with_sampling_leave_nothing_behind(self):
        pid = self.agent.proc.pid
        for i in range(2):  # warm up: the first sampled VMs allocate what the agent keeps
            self.cycle(i)
        before = self.figures(self.settle())
        print(f"\n  {CYCLES} cycles of {NAMES[0]} (1 vCPU) / {NAMES[1]} (2 vCPUs), sampling every thread at 99 Hz")
        print(self.line("before", before))
        every = max(10, CYCLES // 10)
        sampled, start, ticks0 = 0, time.monotonic(), cpu_ticks(pid)
        for i in range(CYCLES):
            sampled += self.cycle(i)
            if (i + 1) % every == 0 and i + 1 < CYCLES:
                f = self.figures(self.agent.scrape())
                print(self.line(f"after {i + 1:4d} cycles, {time.monotonic() - start:6.0f} s", f), flush=True)
        elapsed, cpu = time.monotonic() - start, (cpu_ticks(pid) - ticks0) / os.sysconf("SC_CLK_TCK")
        after = self.figures(self.settle())
        print(self.line("after ", after))
        print(f"  {CYCLES} cycles in {elapsed:.0f} s ({elapsed / CYCLES:.2f} s each), {sampled} showed samples before "
              f"their stop; agent CPU {cpu:.1f} s ({cpu / CYCLES * 1000:.0f} ms per cycle); fds changed: "
              f"{sorted(set(after['fds']) ^ set(before['fds']))}")
        self.assertEqual(after["ours"], 0, "series of soak VMs that are gone")
        self.assertGreaterEqual(sampled, CYCLES // 2, "sampling was not exercised by the cycles")
        self.assertEqual(after["perf_fds"], before["perf_fds"])
        self.assertEqual(after["rings"], before["rings"])
        self.assertEqual(after["ring_bytes"], before["ring_bytes"])
        self.assertLessEqual(abs(len(after["fds"]) - len(before["fds"])), 2)
        self.assertLessEqual(after["maps"], before["maps"] + 16)
        self.assertLess(after["rss_kib"] - before["rss_kib"], 16 * 1024)
        # Series without a VM: read errors may add an errno or two (a thread gone mid-read).
        self.assertLessEqual(after["global_series"], before["global_series"] + 6)


def set_agent(path):
    global AGENT
    AGENT = path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--cycles", type=int)
    known, rest = parser.parse_known_args()
    CYCLES = known.cycles or CYCLES
    sys.argv = [sys.argv[0]] + rest
    sys.exit(h.main(set_agent))
