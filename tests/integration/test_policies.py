#!/usr/bin/env python3
"""Per-VM policies, live reload and VM churn, end to end with real libvirtd and QEMU VMs.

Usage: test_policies.py --agent PATH/kvmprof-agent. Needs root (exit 77 = skipped otherwise).
"""
import os
import signal
import sys
import tempfile
import time
import unittest

import harness as h

AGENT = None
INTERVAL = 1.0

POLICIES = """
policies:
  - name: two-vcpus
    match: {{domain: "kvmprof-pol-two*"}}
    events: [{two_events}]
default:
  events: [task-clock, context-switches, "kvm:kvm_pio"]
"""


def config_text(two_events):
    return POLICIES.format(two_events=two_events)


class PoliciesAndReload(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="kvmprof-pol-")
        os.chmod(cls.tmp.name, 0o755)
        h.libvirt_up()
        cls.one = h.Vm(cls.tmp.name, "kvmprof-pol-one", vcpus=1)
        cls.two = h.Vm(cls.tmp.name, "kvmprof-pol-two", vcpus=2)
        cls.agent = h.Agent(AGENT, cls.tmp.name, interval="1s", extra_config=config_text("task-clock, page-faults"))
        h.wait_for("both VMs' counters", lambda: len(h.select(cls.agent.scrape(), "kvmprof_vcpu_events_total",
                                                              vcpu="0", event="task-clock")) == 2)

    @classmethod
    def tearDownClass(cls):
        code = cls.agent.stop()
        cls.one.destroy()
        cls.two.destroy()
        cls.tmp.cleanup()
        assert code == 0, f"agent exited {code} on SIGTERM"

    def events_of(self, samples, vm):
        return {l["event"] for l, _ in h.select(samples, "kvmprof_vcpu_events_total", uuid=vm.uuid, vcpu="0")}

    def write_config(self, two_events):
        with open(self.agent.config, "w") as f:
            f.write(f"version: 1\nlisten: 127.0.0.1:0\ninterval: 1s\n{config_text(two_events)}")

    def reload(self, two_events):
        self.write_config(two_events)
        self.agent.proc.send_signal(signal.SIGHUP)

    def test_1_each_vm_gets_its_policy(self):
        s = self.agent.scrape()
        self.assertEqual(h.select(s, "kvmprof_vm_info", uuid=self.two.uuid)[0][0]["policy"], "two-vcpus")
        self.assertEqual(h.select(s, "kvmprof_vm_info", uuid=self.one.uuid)[0][0]["policy"], "default")
        self.assertEqual(self.events_of(s, self.two), {"task-clock", "page-faults"})
        self.assertEqual(self.events_of(s, self.one), {"task-clock", "context-switches", "kvm:kvm_pio"})

    def test_2_sighup_changes_exactly_the_matching_vm(self):
        labels = dict(uuid=self.two.uuid, vcpu="0", event="task-clock", mode="all")
        before = h.value(self.agent.scrape(), "kvmprof_vcpu_events_total", **labels)
        one_before = h.value(self.agent.scrape(), "kvmprof_vcpu_events_total", uuid=self.one.uuid, vcpu="0",
                             event="task-clock", mode="all")
        self.reload("task-clock, cpu-migrations")
        h.wait_for("the new events", lambda: self.events_of(self.agent.scrape(), self.two) == {"task-clock", "cpu-migrations"},
                   timeout=10)
        s = self.agent.scrape()
        self.assertEqual(self.events_of(s, self.one), {"task-clock", "context-switches", "kvm:kvm_pio"})  # untouched
        self.assertGreaterEqual(h.value(s, "kvmprof_vcpu_events_total", **labels), before)  # continued, monotonic
        self.assertGreaterEqual(h.value(s, "kvmprof_vcpu_events_total", uuid=self.one.uuid, vcpu="0",
                                        event="task-clock", mode="all"), one_before)
        self.assertEqual(h.value(s, "kvmprof_config_last_reload_successful"), 1)
        self.assertIn('counters reopened for policy "two-vcpus"', self.agent.log_text())
        self.assertNotRegex(self.agent.log_text(), r'VM "kvmprof-pol-one" \([^)]*\): counters reopened')

    def test_2b_editing_the_file_reloads_without_a_signal(self):
        self.write_config("task-clock, cpu-migrations, page-faults")
        h.wait_for("the edited events", lambda: self.events_of(self.agent.scrape(), self.two) ==
                   {"task-clock", "cpu-migrations", "page-faults"}, timeout=25)
        self.assertIn("changed): applied", self.agent.log_text())
        self.reload("task-clock, cpu-migrations")  # back to what the next tests expect
        h.wait_for("the events again", lambda: self.events_of(self.agent.scrape(), self.two) ==
                   {"task-clock", "cpu-migrations"}, timeout=10)

    def test_3_an_invalid_reload_keeps_the_old_metrics_flowing(self):
        with open(self.agent.config, "w") as f:
            f.write("version: 1\npolicies:\n  - name: broken\n    match: {domain: x}\n    events: [cyclez]\n")
        self.agent.proc.send_signal(signal.SIGHUP)
        h.wait_for("reload failure", lambda: h.value(self.agent.scrape(), "kvmprof_config_last_reload_successful") == 0,
                   timeout=10)
        ts, s = self.agent.next_snapshot()
        _, later = self.agent.next_snapshot(after=ts)
        self.assertEqual(self.events_of(later, self.two), {"task-clock", "cpu-migrations"})
        self.assertRegex(self.agent.log_text(), r"agent\.yaml:5:14: unknown event 'cyclez'")
        self.assertEqual(self.agent.proc.poll(), None)

    def test_4_vm_churn_leaves_no_fds_or_series_behind(self):
        def fds():
            return len(os.listdir(f"/proc/{self.agent.proc.pid}/fd"))

        def series():
            return sum(1 for line in self.agent.scrape_text().splitlines() if "kvmprof-pol-churn" in line)

        self.agent.next_snapshot()
        baseline = fds()
        cycles = int(os.environ.get("KVMPROF_CHURN_CYCLES", "50"))
        start = time.monotonic()
        for i in range(cycles):
            vm = h.Vm(self.tmp.name, "kvmprof-pol-churn", vcpus=1, busy=1)
            h.wait_for("the churn VM", lambda: series() > 0, timeout=10, step=0.05)
            vm.destroy()
            h.wait_for("the churn VM's series to go", lambda: series() == 0, timeout=10, step=0.05)
        self.agent.next_snapshot()
        print(f"\n  {cycles} start/stop cycles in {time.monotonic() - start:.1f} s; agent fds {baseline} -> {fds()}")
        # No growth. It can shrink: QEMU's idle worker threads of the other VMs exit, and with
        # them their two procfs fds.
        self.assertLessEqual(fds(), baseline)
        self.assertEqual(series(), 0)


SELECTORS = """
policies:
  - name: investigation
    match:
      metadata: {uri: "https://kvmprof.example/1", key: level, value: investigate}
    events: [task-clock, page-faults]
  - name: batch
    match: {title: "batch worker"}
    aggregation: per_vm
    events: [task-clock]
default:
  events: [task-clock]
"""


class TitleAndMetadataSelectors(unittest.TestCase):
    """Selectors on libvirt's <title> and <metadata>, changed live on running VMs."""

    def test_live_title_and_metadata_changes_move_vms_between_policies(self):
        with tempfile.TemporaryDirectory(prefix="kvmprof-sel-") as tmp:
            os.chmod(tmp, 0o755)
            one = h.Vm(tmp, "kvmprof-sel-one", vcpus=1)
            two = h.Vm(tmp, "kvmprof-sel-two", vcpus=1)
            agent = h.Agent(AGENT, tmp, interval="1s", extra_config=SELECTORS)
            try:
                policy = lambda vm: h.select(agent.scrape(), "kvmprof_vm_info", uuid=vm.uuid)[0][0]["policy"]
                h.wait_for("both VMs", lambda: len(h.select(agent.scrape(), "kvmprof_vm_info")) >= 2)
                self.assertEqual(policy(one), "default")
                h.run(h.VIRSH + ["desc", one.uuid, "--live", "--title", "batch worker"])
                h.run(h.VIRSH + ["metadata", two.uuid, "--live", "--uri", "https://kvmprof.example/1",
                                 "--key", "kvmprof", "--set", "<profile><level>investigate</level></profile>"])
                h.wait_for("the title policy", lambda: policy(one) == "batch", timeout=15)
                h.wait_for("the metadata policy", lambda: policy(two) == "investigation", timeout=15)
                h.wait_for("per-VM sums", lambda: h.select(agent.scrape(), "kvmprof_vm_events_total", uuid=one.uuid,
                                                          event="task-clock"), timeout=10)
                # An event opened for the new policy has a value once it has run (the next cycle).
                events = lambda: {l["event"] for l, _ in h.select(agent.scrape(), "kvmprof_vcpu_events_total", uuid=two.uuid)}
                h.wait_for("the metadata policy's events", lambda: events() == {"task-clock", "page-faults"}, timeout=5)
                self.assertFalse(h.select(agent.scrape(), "kvmprof_vcpu_events_total", uuid=one.uuid))  # aggregated per VM
            finally:
                self.assertEqual(agent.stop(), 0)
                one.destroy()
                two.destroy()


def set_agent(path):
    global AGENT
    AGENT = path


if __name__ == "__main__":
    sys.exit(h.main(set_agent))
