#!/usr/bin/env python3
"""End to end: the real agent, a real libvirtd, two real QEMU VMs, a real Prometheus.

Usage: test_agent.py --agent PATH/kvmprof-agent. Needs root (exit 77 = skipped otherwise).
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request
import xml.etree.ElementTree as ET

import harness as h

INTERVAL = 1.0
ODD_NAME = 'kvmprof-it "quoted" \\ Ünïcødé'
PLAIN_NAME = "kvmprof-it-two-vcpus"
FORGING_NAME = "kvmprof-it-x\nkvmprof-agent error: forged line"
AGENT = None


class AgentAgainstRealVms(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="kvmprof-it-")
        os.chmod(cls.tmp.name, 0o755)
        h.libvirt_up()
        cls.odd = h.Vm(cls.tmp.name, ODD_NAME, vcpus=1)
        cls.two = h.Vm(cls.tmp.name, PLAIN_NAME, vcpus=2)
        cls.agent = h.Agent(AGENT, cls.tmp.name, interval=f"{int(INTERVAL * 1000)}ms")
        # A counter group opened in a cycle has its first value in the next one.
        h.wait_for("both VMs' counters in /metrics",
                   lambda: len(h.select(cls.agent.scrape(), "kvmprof_vcpu_events_total", vcpu="0",
                                        event="task-clock")) == 2)

    @classmethod
    def tearDownClass(cls):
        code = cls.agent.stop()
        cls.odd.destroy()
        cls.two.destroy()
        h.libvirt_up()
        cls.tmp.cleanup()
        assert code == 0, f"agent exited {code} on SIGTERM"

    @staticmethod
    def vm_uuids(samples):
        return {l["uuid"] for l, _ in h.select(samples, "kvmprof_vm_info")}

    def vcpu_total(self, samples, vm, vcpu):
        series = h.select(samples, "kvmprof_vcpu_cpu_seconds_total", uuid=vm.uuid, vcpu=str(vcpu))
        modes = {l["mode"] for l, _ in series}
        self.assertTrue(modes == {"all"} or modes == {"guest", "host_kernel", "host_user"}, modes)
        return sum(v for _, v in series)

    def test_1_every_vm_and_vcpu_is_exported_with_its_exact_name(self):
        s = self.agent.scrape()
        names = {l["domain"] for l, _ in h.select(s, "kvmprof_vm_info")}
        self.assertIn(ODD_NAME, names)
        self.assertIn(PLAIN_NAME, names)
        for vm, vcpus in ((self.odd, 1), (self.two, 2)):
            self.assertEqual(h.value(s, "kvmprof_vm_threads_mapped", uuid=vm.uuid), 1)
            found = {l["vcpu"] for l, _ in h.select(s, "kvmprof_vcpu_wait_seconds_total", uuid=vm.uuid)}
            self.assertEqual(found, {str(i) for i in range(vcpus)})
            self.assertTrue(h.select(s, "kvmprof_vm_emulator_cpu_seconds_total", uuid=vm.uuid))
        self.assertEqual(h.value(s, "kvmprof_libvirt_up"), 1)

    def test_2_counters_grow_between_scrapes(self):
        ts, first = self.agent.next_snapshot()
        _, second = self.agent.next_snapshot(after=ts + INTERVAL)
        for vm in (self.odd, self.two):
            self.assertGreater(self.vcpu_total(second, vm, 0), self.vcpu_total(first, vm, 0))
            tc = dict(uuid=vm.uuid, vcpu="0", event="task-clock", mode="all")
            self.assertGreater(h.value(second, "kvmprof_vcpu_events_total", **tc),
                               h.value(first, "kvmprof_vcpu_events_total", **tc))
            self.assertGreaterEqual(h.value(second, "kvmprof_vcpu_wait_seconds_total", uuid=vm.uuid, vcpu="0"),
                                    h.value(first, "kvmprof_vcpu_wait_seconds_total", uuid=vm.uuid, vcpu="0"))

    def test_3_vcpu_time_lies_between_schedstat_and_libvirt_before_and_after(self):
        for vm in (self.odd, self.two):
            tid = vm.vcpu_tid(0)
            sched_before, virt_before = h.schedstat_run_ns(tid) / 1e9, vm.libvirt_vcpu_time(0) / 1e9
            total = self.vcpu_total(self.agent.scrape(), vm, 0)
            sched_after, virt_after = h.schedstat_run_ns(tid) / 1e9, vm.libvirt_vcpu_time(0) / 1e9
            slack = INTERVAL + 0.25  # the snapshot is at most one interval old
            self.assertLessEqual(total, sched_after + 0.01)
            self.assertGreaterEqual(total, sched_before - slack)
            self.assertLessEqual(total, virt_after + 0.01)
            self.assertGreaterEqual(total, virt_before - slack)

    def test_4_task_clock_agrees_with_perf_stat_within_5_percent(self):
        tid = self.two.vcpu_tid(0)
        labels = dict(uuid=self.two.uuid, vcpu="0", event="task-clock", mode="all")
        perf = h.PerfStatStream(tid)
        try:
            time.sleep(0.5)  # perf is attached and printing
            start, first = self.agent.next_snapshot()
            end = start
            for _ in range(4):
                end, last = self.agent.next_snapshot(after=end)
            time.sleep(0.1)  # the interval that holds `end` has arrived
        finally:
            perf.stop()
        perf_seconds = perf.seconds_between(start, end)
        agent_seconds = (h.value(last, "kvmprof_vcpu_events_total", **labels) -
                         h.value(first, "kvmprof_vcpu_events_total", **labels)) / 1e9
        print(f"\n  task-clock over 4 snapshots: agent {agent_seconds:.3f} s, perf stat {perf_seconds:.3f} s")
        self.assertGreater(agent_seconds, 0.5)
        self.assertLess(abs(agent_seconds - perf_seconds) / agent_seconds, 0.05)

    def test_5_sources_say_what_is_live_and_dead_sources_export_nothing(self):
        s = self.agent.scrape()
        sources = {l["source"]: v for l, v in h.select(s, "kvmprof_source_up")}
        self.assertEqual(sources["perf:task-clock"], 1)
        for source in ("perf:kvm:kvm_exit", "perf:kvm:kvm_pio", "libvirt_vcpu_exits"):
            self.assertIn(source, sources)
            event = source.removeprefix("perf:")
            series = h.select(s, "kvmprof_vcpu_events_total", event=event) if source.startswith("perf:") \
                else h.select(s, "kvmprof_vcpu_exits_total")
            # Live: series exist. Not live: no series at all, never zeros.
            self.assertEqual(bool(series), sources[source] == 1, source)

    def test_5b_event_info_says_what_each_event_counts(self):
        s = self.agent.scrape()
        info = {l["event"]: l for l, _ in h.select(s, "kvmprof_event_info")}
        self.assertEqual(info["task-clock"]["status"], "ok")
        self.assertEqual(info["task-clock"]["counts"], "all")
        self.assertIn(info["kvm:kvm_exit"]["status"], ("ok", "unsupported"))

    def test_5c_each_vm_exports_what_check_config_estimates_less_the_dead_sources(self):
        out = h.run([AGENT, "check-config", self.agent.config])
        m = re.search(r"  default: about \d+ per VM of 4 vCPUs \((\d+) \+ (\d+) per vCPU\)", out)
        self.assertTrue(m, out)
        per_vm, per_vcpu = int(m.group(1)), int(m.group(2))
        s = self.agent.scrape()
        sources = {l["source"]: v for l, v in h.select(s, "kvmprof_source_up")}
        dead = sum(1 for src, up in sources.items() if src.startswith("perf:") and not up)  # 1 series per vCPU each
        if not sources["libvirt_vcpu_exits"]:
            dead += 9
        for vm, vcpus in ((self.odd, 1), (self.two, 2)):
            names = [name for name, labels, _ in s if labels.get("uuid") == vm.uuid]
            print(f"\n  {vcpus} vCPU(s): {len(names)} series; estimate {per_vm} + {per_vcpu} per vCPU, "
                  f"less {dead} per vCPU of dead sources")
            self.assertEqual(len(names), per_vm + (per_vcpu - dead) * vcpus, sorted(names))
            self.assertNotIn("kvmprof_vcpu_event_enabled_seconds_total", names)  # software events only

    def test_6_promtool_accepts_a_scrape(self):
        result = h.promtool_check(self.agent.scrape_text())
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_7_prometheus_finds_each_vm(self):
        prom = h.Prometheus(self.tmp.name, self.agent.port)
        try:
            for vm in (self.odd, self.two):
                q = f'kvmprof_vcpu_cpu_seconds_total{{uuid="{vm.uuid}",vcpu="0"}}'
                result = h.wait_for(f"{vm.name} in Prometheus", lambda: prom.query(q), timeout=60, step=0.5)
                self.assertEqual(result[0]["metric"]["domain"], vm.name)
        finally:
            prom.stop()

    def test_8_libvirtd_restart_keeps_the_agent_serving_and_recovers(self):
        h.stop_libvirtd()
        h.wait_for("kvmprof_libvirt_up 0",
                   lambda: h.value(self.agent.scrape(), "kvmprof_libvirt_up") == 0, timeout=30)
        # Still serving, still measuring the VMs it knows.
        ts, s = self.agent.next_snapshot()
        self.assertEqual(self.vm_uuids(s), {self.odd.uuid, self.two.uuid})
        h.libvirt_up()
        h.wait_for("kvmprof_libvirt_up 1",
                   lambda: h.value(self.agent.scrape(), "kvmprof_libvirt_up") == 1, timeout=60)
        _, s = self.agent.next_snapshot(after=ts + INTERVAL)
        self.assertEqual(self.vm_uuids(s), {self.odd.uuid, self.two.uuid})
        self.assertTrue(h.select(s, "kvmprof_vcpu_exits_total", uuid=self.two.uuid) or
                        not h.select(s, "kvmprof_source_up", source="libvirt_vcpu_exits"))

    def test_9_vms_appear_and_vanish_within_one_to_two_intervals(self):
        late = h.Vm(self.tmp.name, "kvmprof-it-late", vcpus=1)
        try:
            start = time.monotonic()
            h.wait_for("the new VM in /metrics", lambda: late.uuid in self.vm_uuids(self.agent.scrape()),
                       timeout=INTERVAL + 1)
            print(f"\n  new VM exported {time.monotonic() - start:.2f} s after virsh create")
        finally:
            late.destroy()
        h.wait_for("the late VM's series to go",
                   lambda: f'uuid="{late.uuid}"' not in self.agent.scrape_text(), timeout=2 * INTERVAL + 1)
        self.two.destroy()
        start = time.monotonic()
        h.wait_for("the destroyed VM's series to go",
                   lambda: f'uuid="{self.two.uuid}"' not in self.agent.scrape_text(), timeout=2 * INTERVAL + 1)
        print(f"\n  series gone {time.monotonic() - start:.2f} s after virsh destroy")
        self.assertIn(self.odd.uuid, self.vm_uuids(self.agent.scrape()))


class HostileNamesAndClients(unittest.TestCase):
    """Outside input that tries to break the agent: a VM name that would forge a log line, and
    HTTP clients that hold connections while Prometheus scrapes."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="kvmprof-hostile-")
        os.chmod(cls.tmp.name, 0o755)
        h.libvirt_up()
        cls.vm = h.Vm(cls.tmp.name, FORGING_NAME, vcpus=1)
        cls.agent = h.Agent(AGENT, cls.tmp.name, interval=f"{int(INTERVAL * 1000)}ms")
        h.wait_for("the VM", lambda: h.select(cls.agent.scrape(), "kvmprof_vm_info", uuid=cls.vm.uuid))

    @classmethod
    def tearDownClass(cls):
        code = cls.agent.stop()
        cls.vm.destroy()
        cls.tmp.cleanup()
        assert code == 0, f"agent exited {code} on SIGTERM"

    def test_a_vm_name_cannot_forge_a_log_line(self):
        self.assertEqual(h.select(self.agent.scrape(), "kvmprof_vm_info", uuid=self.vm.uuid)[0][0]["domain"], FORGING_NAME)
        log = self.agent.log_text()
        self.assertIn('VM "kvmprof-it-x\\nkvmprof-agent error: forged line"', log)
        self.assertFalse([line for line in log.splitlines() if line.startswith("kvmprof-agent error: forged")])

    def test_the_status_page_shows_a_hostile_name_literally(self):
        """/ is well-formed (X)HTML whatever a VM is named: the name's newline is shown as \\n,
        nothing it holds becomes markup, and a browser renders the page (chromium screenshot)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.agent.port}/", timeout=5) as r:
            self.assertEqual(r.headers["Content-Type"], "text/html; charset=utf-8")
            page = r.read()
        root = ET.fromstring(page)  # raises unless well-formed
        cells = ["".join(td.itertext()) for td in root.iter("{http://www.w3.org/1999/xhtml}td")]
        self.assertIn(FORGING_NAME.replace("\n", "\\n"), cells)
        self.assertIn(self.vm.uuid, cells)
        self.assertEqual(list(root.iter("{http://www.w3.org/1999/xhtml}script")), [])
        chromium = shutil.which("chromium")
        if not chromium:
            self.skipTest("chromium not installed: the page was checked, not rendered")
        html, png = os.path.join(self.tmp.name, "status.html"), os.path.join(self.tmp.name, "status.png")
        with open(html, "wb") as f:
            f.write(page)
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={png}",
                        "--window-size=1300,900", f"file://{html}"], capture_output=True, timeout=120)
        self.assertGreater(os.path.getsize(png), 10_000)
        print(f"\n  status page: {len(page)} bytes, {len(cells)} cells; screenshot {os.path.getsize(png)} bytes")

    def test_prometheus_scrapes_while_hundreds_of_clients_hold_connections(self):
        prom = h.Prometheus(self.tmp.name, self.agent.port)
        stop = threading.Event()
        held = []

        def hostile():
            for i in range(350):
                s = socket.create_connection(("127.0.0.1", self.agent.port))
                held.append(s)
                if i % 7 == 0:
                    s.sendall(b"GET /metrics HTTP/1.1\r\n")  # a slowloris: never finishes its headers
            while not stop.wait(0.5):
                for s in held[::7]:
                    try:
                        s.sendall(b"X")
                    except OSError:
                        pass

        worker = threading.Thread(target=hostile, daemon=True)
        try:
            h.wait_for("Prometheus scraping", lambda: prom.query('up{job="kvmprof"}') != [], timeout=60, step=0.5)
            worker.start()
            latencies = []
            end = time.monotonic() + 20
            while time.monotonic() < end:
                t0 = time.monotonic()
                self.agent.scrape_text()
                latencies.append(time.monotonic() - t0)
                time.sleep(0.2)
            up = prom.query('min_over_time(up{job="kvmprof"}[20s])')
            duration = prom.query('max_over_time(scrape_duration_seconds{job="kvmprof"}[20s])')
            print(f"\n  {len(held)} hostile connections; our scrapes: max {max(latencies) * 1000:.1f} ms; "
                  f"Prometheus: min up {up[0]['value'][1]}, max scrape {float(duration[0]['value'][1]) * 1000:.1f} ms")
            self.assertEqual(up[0]["value"][1], "1")
            self.assertLess(max(latencies), 1.0)
        finally:
            stop.set()
            for s in held:
                s.close()
            prom.stop()


def set_agent(path):
    global AGENT
    AGENT = path


if __name__ == "__main__":
    sys.exit(h.main(set_agent))
