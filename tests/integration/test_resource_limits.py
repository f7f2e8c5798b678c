#!/usr/bin/env python3
"""Fault matrix (issue 11, section 3), host limit rows, end to end with the real agent and two
real VMs, one under a high-priority policy and one under a low-priority one, both counting and
sampling: the agent run with RLIMIT_NOFILE below what it needs (prlimit), and with a low
RLIMIT_MEMLOCK without CAP_IPC_LOCK (prlimit + setpriv), so the kernel refuses sampling rings.
What must hold: scrapes answer, the agent degrades lowest priority first, and says why (a log
line with what to do, and a metric).

Usage: test_resource_limits.py --agent PATH/kvmprof-agent. Needs root (exit 77 = skipped otherwise).
"""
import os
import sys
import tempfile
import time
import unittest
import urllib.request

import harness as h

AGENT = None
HIGH, LOW = "kvmprof-fm-lim-high", "kvmprof-fm-lim-low"
CONFIG = f"""policies:
  - name: high
    match: {{domain: "{HIGH}"}}
    priority: 10
    events: [task-clock, context-switches]
    sampling: {{event: cpu-clock, frequency: 99, threads: vcpu, buffer: 16}}
  - name: low
    match: {{domain: "{LOW}"}}
    priority: -10
    events: [task-clock, context-switches]
    sampling: {{event: cpu-clock, frequency: 99, threads: all, buffer: 256}}
default:
  events: []
"""
MEMLOCK = 1 << 20


def try_scrape(agent, timeout=2.0):
    """(seconds, text) of one scrape, or (None, why) when it did not answer within `timeout`."""
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(agent.url, timeout=timeout) as r:
            return time.monotonic() - t0, r.read().decode()
    except OSError as e:
        return None, repr(e)


class ResourceLimits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="kvmprof-fm-lim-")
        os.chmod(cls.tmp.name, 0o755)
        h.libvirt_up()
        cls.high = h.Vm(cls.tmp.name, HIGH, vcpus=1)
        cls.low = h.Vm(cls.tmp.name, LOW, vcpus=2)

    @classmethod
    def tearDownClass(cls):
        cls.high.destroy()
        cls.low.destroy()
        cls.tmp.cleanup()

    def start(self, name, wrapper=()):
        workdir = os.path.join(self.tmp.name, name)
        os.makedirs(workdir)
        agent = h.Agent(AGENT, workdir, interval="1s", extra_config=CONFIG, wrapper=wrapper)
        self.addCleanup(agent.kill)
        return agent

    def measured(self, agent):
        """Waits until both VMs are found (the log says so), then for the opens to settle."""
        h.wait_for("both VMs found", lambda: all(f'VM "{n}"' in agent.log_text() for n in (HIGH, LOW)), timeout=20)
        time.sleep(4)

    def scrapes(self, agent, n=10):
        results = []
        for _ in range(n):
            results.append(try_scrape(agent))
            time.sleep(0.3)
        return results

    def samples_of(self, samples, vm):
        return sum(v for _, v in h.select(samples, "kvmprof_vcpu_samples_total", uuid=vm.uuid))

    def test_1_rlimit_nofile_below_need(self):
        full = self.start("unlimited")
        h.wait_for("every VM sampled", lambda: all(h.select(full.scrape(), "kvmprof_vcpu_samples_total", uuid=vm.uuid)
                                                   for vm in (self.high, self.low)), timeout=30)
        time.sleep(2)
        need = len(os.listdir(f"/proc/{full.proc.pid}/fd"))
        self.assertEqual(full.stop(), 0)
        limit = need - 8
        agent = self.start("nofile", wrapper=["prlimit", f"--nofile={limit}:{limit}"])
        self.measured(agent)
        results = self.scrapes(agent)
        answered = [t for t, _ in results if t is not None]
        log = agent.log_text()
        said = [line for line in log.splitlines() if "NOFILE" in line or "EMFILE" in line or "too many open files" in line]
        print(f"\n  RLIMIT_NOFILE {limit} (unlimited it holds {need} fds): agent holds "
              f"{len(os.listdir(f'/proc/{agent.proc.pid}/fd'))}; {len(answered)} of {len(results)} scrapes answered"
              f" (slowest {max(answered, default=0) * 1000:.0f} ms); first failure: "
              f"{next((why for t, why in results if t is None), None)}; the log says: {said[:2]}")
        self.assertIsNone(agent.proc.poll(), "the agent exited")
        # Found by this test: below the fds it needed, the collector took every free fd and the
        # HTTP acceptor never got one: scrapes hung and nothing was logged. Now RLIMIT_NOFILE is a
        # host limit (lowest priority degrades first, logged) and the acceptor keeps a spare fd.
        self.assertEqual(len(answered), len(results), "scrapes did not answer under a low RLIMIT_NOFILE")
        self.assertLess(max(answered), 1.0)
        self.assertTrue(said, "nothing in the log says the agent ran out of file descriptors")
        s = h.parse_metrics(results[-1][1])
        for vm in (self.high, self.low):
            self.assertTrue(h.select(s, "kvmprof_vm_info", uuid=vm.uuid), vm.name)
        self.assertTrue(h.select(s, "kvmprof_perf_open_errors_total", errno="EMFILE") or
                        h.select(s, "kvmprof_read_errors_total", errno="EMFILE") or
                        h.select(s, "kvmprof_limit_action_info"), "no metric says what the fd limit took")
        # Lowest priority first: the high-priority VM keeps its counters and its samples.
        ts, first = agent.next_snapshot()
        _, later = agent.next_snapshot(after=ts + 1.5)
        tc = dict(uuid=self.high.uuid, vcpu="0", event="task-clock", mode="all")
        self.assertGreater(h.value(later, "kvmprof_vcpu_events_total", **tc), h.value(first, "kvmprof_vcpu_events_total", **tc))
        self.assertGreater(self.samples_of(later, self.high), self.samples_of(first, self.high))
        self.assertEqual(agent.stop(), 0)

    def test_2_rlimit_memlock_without_cap_ipc_lock(self):
        wrapper = ["prlimit", f"--memlock={MEMLOCK}:{MEMLOCK}", "setpriv", "--bounding-set", "-ipc_lock"]
        agent = self.start("memlock", wrapper=wrapper)
        with open(f"/proc/{agent.proc.pid}/status") as f:
            cap_eff = int(next(l for l in f if l.startswith("CapEff:")).split()[1], 16)
        self.assertFalse(cap_eff & (1 << 14), "CAP_IPC_LOCK was not dropped")
        self.measured(agent)
        results = self.scrapes(agent, n=5)
        self.assertTrue(all(t is not None and t < 1.0 for t, _ in results), [why for t, why in results if t is None])
        h.wait_for("the low policy's sampling off", lambda: h.select(
            agent.scrape(), "kvmprof_limit_action_info", policy="low", action="sampling_off", event="cpu-clock"), timeout=15)
        ts, first = agent.next_snapshot()
        _, later = agent.next_snapshot(after=ts + 1.5)
        _, last = agent.next_snapshot(after=ts + 2.5)
        self.assertGreater(self.samples_of(later, self.high), self.samples_of(first, self.high))
        self.assertFalse(h.select(last, "kvmprof_limit_action_info", policy="high"))
        self.assertEqual(self.samples_of(last, self.low), self.samples_of(later, self.low))  # stopped, not going down
        for vm in (self.high, self.low):  # counting goes on for both
            tc = dict(uuid=vm.uuid, vcpu="0", event="task-clock", mode="all")
            self.assertGreater(h.value(later, "kvmprof_vcpu_events_total", **tc), h.value(first, "kvmprof_vcpu_events_total", **tc))
        ring_bytes = h.value(last, "kvmprof_sample_ring_bytes")
        self.assertEqual(h.agent_footprint(agent.proc.pid)["rings"], 1)  # the high VM's one vCPU
        self.assertEqual(h.value(last, "kvmprof_source_up", source="sampling:cpu-clock"), 1)
        warnings = [l for l in agent.log_text().splitlines() if "locked memory" in l]
        print(f"\n  RLIMIT_MEMLOCK {MEMLOCK >> 10} KiB, no CAP_IPC_LOCK: scrapes answered (slowest "
              f"{max(t for t, _ in results) * 1000:.0f} ms); the low policy stopped sampling, the high one samples "
              f"({self.samples_of(first, self.high):.0f} -> {self.samples_of(later, self.high):.0f}); ring bytes "
              f"{ring_bytes:.0f}; the log says: {warnings}")
        ceiling = [l for l in warnings if "refused a sampling ring's mmap" in l]
        self.assertTrue(ceiling, warnings)
        # Found by this test: this warning said what happened but not what to do (the remedy was
        # only in another warning, logged depending on timing).
        self.assertTrue(any(w in ceiling[0] for w in ("MEMLOCK", "perf_event_mlock_kb", "CAP_IPC_LOCK")), ceiling[0])
        self.assertEqual(agent.stop(), 0)


def set_agent(path):
    global AGENT
    AGENT = path


if __name__ == "__main__":
    sys.exit(h.main(set_agent))
