#!/usr/bin/env python3
"""Least privilege, for real: the agent run by setpriv as user nobody with exactly the four
capabilities the unit grants (ambient, no_new_privs) against a real VM shows the same series as
the agent run as root; without CAP_PERFMON it says what is missing and why, and its perf
sources are down while procfs and libvirt still measure. libvirt is opened read-only; libvirtd
authorizes nobody through polkit over the system D-Bus (deploy/libvirt-up.sh starts it where
no init system does)."""
import os
import tempfile
import unittest
import urllib.request

import harness as h

AGENT = None
VM_NAME = "kvmprof-it-leastpriv"
CAPS = ["perfmon", "sys_ptrace", "dac_read_search", "syslog"]
CONFIG = "default:\n  sampling: {frequency: 99}\n"


def setpriv(caps):
    listed = ",".join("+" + c for c in caps)
    return ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", "--inh-caps", "-all" + ("," + listed if caps else ""),
            "--ambient-caps", listed or "-all", "--bounding-set", "-all" + ("," + listed if caps else ""), "--no-new-privs"]


def workdir(parent, name):
    d = os.path.join(parent, name)
    os.mkdir(d)
    os.chmod(d, 0o755)
    return d


def shape(samples):
    """The series without their values: (name, labels) of every kvmprof_ series that is about
    the VM or a source, and each source's up value."""
    series = {(n, frozenset(labels.items())) for n, labels, _ in samples
              if n.startswith("kvmprof_") and ("uuid" in labels or "source" in labels) and n != "kvmprof_source_up"}
    up = {labels["source"]: v for n, labels, v in samples if n == "kvmprof_source_up"}
    return series, up


class LeastPrivilege(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="kvmprof-leastpriv-")
        os.chmod(cls.tmp.name, 0o755)
        h.libvirt_up()
        cls.vm = h.Vm(cls.tmp.name, VM_NAME, vcpus=1)
        cls.root = h.Agent(AGENT, workdir(cls.tmp.name, "root"), extra_config=CONFIG)
        cls.capped = h.Agent(AGENT, workdir(cls.tmp.name, "capped"), extra_config=CONFIG, wrapper=setpriv(CAPS))
        cls.no_perfmon = h.Agent(AGENT, workdir(cls.tmp.name, "no-perfmon"), extra_config=CONFIG,
                                 wrapper=setpriv([c for c in CAPS if c != "perfmon"]))
        for agent in (cls.root, cls.capped, cls.no_perfmon):
            h.wait_for("the VM", lambda: h.select(agent.scrape(), "kvmprof_vm_info", uuid=cls.vm.uuid), timeout=60)

    @classmethod
    def tearDownClass(cls):
        codes = [a.stop() for a in (cls.root, cls.capped, cls.no_perfmon)]
        cls.vm.destroy()
        cls.tmp.cleanup()
        assert codes == [0, 0, 0], f"agents exited {codes} on SIGTERM"

    def test_it_runs_as_nobody_with_exactly_four_capabilities_and_says_so(self):
        with open(f"/proc/{self.capped.proc.pid}/status") as f:
            status = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
        self.assertEqual(status["Uid"].split()[0], "65534")
        self.assertEqual(int(status["CapEff"], 16), (1 << 38) | (1 << 19) | (1 << 2) | (1 << 34))
        self.assertEqual(status["NoNewPrivs"].strip(), "1")
        self.assertIn("capabilities: CAP_PERFMON yes, CAP_SYS_PTRACE yes, CAP_DAC_READ_SEARCH yes, CAP_SYSLOG yes",
                      self.capped.log_text())
        self.assertNotIn("without CAP_", self.capped.log_text())

    def test_the_same_series_as_root(self):
        """Every series about the VM and every source's up value, as root has them (retried
        while sources come up: a tracepoint is live once the VM has hit it)."""
        def same():
            root, capped = shape(self.root.scrape()), shape(self.capped.scrape())
            return (root, capped) if root == capped else None
        try:
            root, _ = h.wait_for("the same series as root", same, timeout=30, step=1)
        except AssertionError:
            root, capped = shape(self.root.scrape()), shape(self.capped.scrape())
            self.fail(f"only as root: {sorted(root[0] - capped[0])[:10]}\nonly capped: {sorted(capped[0] - root[0])[:10]}\n"
                      f"sources root: {root[1]}\nsources capped: {capped[1]}")
        series, up = root
        self.assertEqual(up["perf:task-clock"], 1)
        self.assertEqual(up["libvirt_vcpu_exits"], 1)
        self.assertGreater(len(series), 20)
        print(f"\n  as nobody with 4 capabilities: the same {len(series)} series and {len(up)} sources as root")

    def test_profiles_name_the_same_kernel_frames(self):
        def kernel_frames(agent):
            url = f"http://127.0.0.1:{agent.port}/debug/pprof/flamegraph?seconds=10&format=folded&domain={VM_NAME}"
            with urllib.request.urlopen(url, timeout=30) as r:
                text = r.read().decode()
            return {frame for line in text.splitlines() for frame in line.rsplit(" ", 1)[0].split(";")
                    if frame.endswith("_[k]") and not frame.startswith("0x")}
        root = h.wait_for("kernel frames in the profile", lambda: kernel_frames(self.root), timeout=30, step=1)
        capped = kernel_frames(self.capped)
        self.assertGreater(len(root & capped), len(root) // 2, f"root {sorted(root)[:5]}, capped {sorted(capped)[:5]}")

    def test_without_cap_perfmon_the_perf_sources_are_down_and_the_log_says_why(self):
        log = self.no_perfmon.log_text()
        self.assertIn("capabilities: CAP_PERFMON no, CAP_SYS_PTRACE yes", log)
        self.assertIn("without CAP_PERFMON: perf_event_open on QEMU's threads is refused (EACCES)", log)
        self.assertIn("needs CAP_PERFMON", log)
        samples = h.wait_for("the perf sources down", lambda: (lambda s: s if h.value(s, "kvmprof_source_up", source="perf:task-clock") == 0 else None)(self.no_perfmon.scrape()))
        self.assertEqual(h.value(samples, "kvmprof_source_up", source="procfs_tick_split"), 1)
        self.assertEqual(h.value(samples, "kvmprof_libvirt_up"), 1)
        self.assertFalse(h.select(samples, "kvmprof_vcpu_events_total"))


def set_agent(path):
    global AGENT
    AGENT = path


if __name__ == "__main__":
    raise SystemExit(h.main(set_agent))
