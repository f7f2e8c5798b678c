#!/usr/bin/env python3
"""Profiles end to end: the real agent samples real QEMU threads, and what it serves at
/debug/pprof/profile and /debug/pprof/flamegraph (and writes with `kvmprof-agent profile`) is
checked against its own sample counters, against `perf record` on the same vCPU thread, against
/proc/kallsyms and QEMU's .dynsym, and against what go tool pprof and a browser make of it.

Usage: test_profiles.py --agent PATH/kvmprof-agent. Needs root (exit 77 = skipped otherwise).
`perf` (Debian: linux-perf), `go` (golang-go: go tool pprof) and `chromium` are used where
installed; without one of them the checks that need it are skipped with a message.

One agent serves the whole suite, sampling cpu-clock at 499 Hz with kernel callchains on every
thread of two VMs (boot sectors from deploy/make-boot-image.sh, 1 vCPU each):
- the busy VM spins in real mode. On the development host (nested PVM) KVM emulates it in the
  host kernel, so its vCPU samples are almost all host_kernel in x86_emulate_* under
  kvm_vcpu_ioctl; its `out 0x80` exits run QEMU on the vCPU thread (kvm_cpu_exec);
- the idle VM boots SeaBIOS, then halts with interrupts off: its samples since the agent
  started hardly change any more, which makes exact comparisons between two requests possible.
The agent keeps profiles for 1 h (`profiles.window`), so `seconds=3600` asks for every sample
since it started: nothing drops off the start of that window while the suite runs, and the
profile can be bracketed exactly by the sample counters of /metrics.

What is checked, and why:
1. A busy VM's profile: go tool pprof reads it; its sample counts per thread and mode lie
   between the counters of the snapshot before and after the request; the last N seconds hold
   what the counters grew by over the same N seconds (within the samples the window edges can
   move); labels, period, duration; every kernel frame named as /proc/kallsyms names it; the
   stacks are KVM's instruction emulation inside the KVM_RUN ioctl.
2. Agreement with `perf record -g -e cpu-clock -F 499 -t <vCPU tid>` over the same 20 s: the
   sample counts, the top 5 functions by self share, and each share within a binomial bound
   (and `go tool pprof -tagfocus=vcpu=0` sees the decoder's counts).
3. The emulator threads (QEMU's main loop busy with monitor commands) are named from QEMU's
   .dynsym, in the QEMU mapping with its build-id, each name checked against the symbol table.
4. The flame graph: well-formed SVG, title, frames, widths and shares consistent with the pprof
   profile; chromium renders it; folded stacks sum to the profile's samples exactly.
5. `kvmprof-agent profile`: svg, pprof and folded files; exit 2 with the agent's 404 message for
   an unknown VM; exit 1 and a hint when no agent listens.
6. Bad parameters get 400 (404 for an unknown VM) with a reason; the default 30 s, gzip, HEAD
   and `format=` on either path; domain/uuid/mode select what they say (the modes of a profile
   add up to it); 20 clients asking at once each get 200 or 503 with Retry-After until they have
   their profile, never a reset, while /metrics keeps answering.
7. A VM destroyed while its profile is fetched in a loop: 200 until it is gone, then 404, and
   the agent stays up.
"""
import collections
import gzip
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import harness as h
from profile_tools import (EXECUTION_MODES, PERF, Pprof, total, self_counts, cum_share, fetch, raw_get, counters, by_thread_and_mode, Kallsyms, ElfFunctions, PerfRecordCallchains, share_bound, png_summary, parse_folded, folded_from_pprof, normalize_folded, svg_frames, svg_title, grey, SVG_NS, UNNAMED)
from test_sampling import BOOT_SECTOR, BootVm, busy_image, halting_image

AGENT = None
BUSY = "kvmprof-prof-busy"
IDLE = "kvmprof-prof-idle"
FREQ = 499
WINDOW = 3600  # profiles.window: seconds=WINDOW is every sample since the agent started
GO = shutil.which("go")
CHROMIUM = shutil.which("chromium")
CONFIG = f"""policies:
  - name: prof
    match: {{domain: "kvmprof-prof-*"}}
    events: [task-clock]
    sampling: {{event: cpu-clock, frequency: {FREQ}, threads: all, callchain: kernel}}
default:
  events: []
profiles: {{window: 1h, max_samples: 10000000, max_stacks: 1000000}}
"""


class ProfilesAgainstRealVms(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="kvmprof-prof-")
        os.chmod(cls.tmp.name, 0o755)
        cls.goenv = dict(os.environ, HOME=os.path.join(cls.tmp.name, "home"), GOCACHE=os.path.join(cls.tmp.name, "gocache"),
                         GOPATH=os.path.join(cls.tmp.name, "gopath"))
        os.makedirs(cls.goenv["HOME"])
        h.libvirt_up()
        for name in (BUSY, IDLE):  # left over from an interrupted run
            subprocess.run(h.VIRSH + ["destroy", name], capture_output=True)
        # The agent first, so the VMs' boot (SeaBIOS) is in the profiles from its first sample.
        cls.agent_started = time.monotonic()
        cls.agent = h.Agent(AGENT, os.path.join(cls.tmp.name), interval="1s", extra_config=CONFIG)
        cls.agent_serving = time.monotonic()  # its profile store was made between the two
        cls.port = cls.agent.port
        cls.idle = BootVm(IDLE, halting_image(os.path.join(cls.tmp.name, "idle.img")))
        cls.busy = BootVm(BUSY, busy_image(os.path.join(cls.tmp.name, "busy.img")))
        tid = cls.idle.vcpu_tid(0)

        def halted():
            before = h.schedstat_run_ns(tid)
            time.sleep(1.0)
            return h.schedstat_run_ns(tid) - before < 10_000_000
        h.wait_for("the idle guest to halt", halted, timeout=120, step=0)
        h.wait_for("the busy VM's vCPU samples",
                   lambda: sum(v for _, v in h.select(cls.agent.scrape(), "kvmprof_vcpu_samples_total", uuid=cls.busy.uuid)) > 2 * FREQ,
                   timeout=60, step=0.5)
        for tool, why in ((PERF, "perf (linux-perf): test 2"), (GO, "go (golang-go): go tool pprof"),
                          (CHROMIUM, "chromium: the flame graph screenshot")):
            if not tool:
                print(f"\n  {why} not found: the checks that need it are skipped", file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        code = cls.agent.stop()
        cls.busy.destroy()
        cls.idle.destroy()
        cls.tmp.cleanup()
        if code != 0:
            raise AssertionError(f"agent exit code on SIGTERM: {code}")

    def setUp(self):
        self.started = time.monotonic()

    def tearDown(self):
        print(f"  ({self._testMethodName} took {time.monotonic() - self.started:.1f} s)")

    # --- helpers ---

    def profile(self, query, allow_empty=False):
        status, headers, body = fetch(self.port, f"/debug/pprof/profile?{query}")
        self.assertEqual(status, 200, f"{query}: {body[:300]!r}")
        self.assertEqual(headers["Content-Type"], "application/octet-stream")
        self.assertEqual(headers["Content-Disposition"], 'attachment; filename="profile"')
        p = Pprof(body)
        p.body = body
        if not allow_empty:
            self.assertTrue(p.samples, f"{query}: an empty profile; comments {p.comments}")
        return p

    def text(self, target):
        status, headers, body = fetch(self.port, target)
        self.assertEqual(status, 200, f"{target}: {body[:300]!r}")
        return headers, body.decode()

    def go_pprof(self, *args):
        return subprocess.run([GO, "tool", "pprof"] + list(args), capture_output=True, text=True, env=self.goenv,
                              timeout=120)

    def check_with_go(self, profile, path):
        """go tool pprof -raw reads the profile, and its sample total is the decoder's."""
        if not GO:
            return None
        with open(path, "wb") as f:
            f.write(profile.body)
        raw = self.go_pprof("-raw", path)
        self.assertEqual(raw.returncode, 0, raw.stderr)
        counted = sum(int(m.group(1)) for m in re.finditer(r"^\s+(\d+)\s+\d+:(?: \d+)*\s*$", raw.stdout, re.M))
        self.assertEqual(counted, total(profile.samples), "go tool pprof -raw sums to another total")
        return raw.stdout

    def fresh_snapshot(self):
        """A snapshot taken just now: the cycle has drained the rings, so a request right after
        it misses at most the few milliseconds since."""
        ts, _ = self.agent.next_snapshot()
        return self.agent.next_snapshot(after=ts)

    def snapshot_after(self, t):
        """A snapshot whose whole cycle ran after Unix time t (the one after the first that ended later)."""
        ts, _ = self.agent.next_snapshot(after=t)
        return self.agent.next_snapshot(after=ts)

    def stable(self, fetch_all, key, attempts=10):
        """fetch_all() -> results; key(results) compares the first and the last. Retries until
        they agree, i.e. no sample of the idle VM arrived between the requests (its QEMU main
        loop is sampled about once in two seconds)."""
        for _ in range(attempts):
            got = fetch_all()
            if key(got[0]) == key(got[-1]):
                return got
            time.sleep(0.3)
        raise AssertionError(f"the idle VM's profile kept changing over {attempts} attempts")

    # --- the tests ---

    def test_1_busy_vm_profile_matches_the_sample_counters(self):
        vm, n = self.busy, 10
        # Everything since the agent started, bracketed by the counters of the snapshot before
        # the request and of one taken wholly after it. The sampler adds each drained sample to
        # its counter and to the profile store under one lock, so this holds exactly.
        _, before = self.fresh_snapshot()
        asked = time.monotonic()
        profile_all = self.profile(f"seconds={WINDOW}&domain={vm.name}")
        answered = time.monotonic()
        _, after = self.snapshot_after(time.time())
        got, low, high = by_thread_and_mode(profile_all.samples), counters(before, vm), counters(after, vm)
        print(f"\n  since the agent started: profile {dict(got)}\n  counters before {low}\n  counters after  {high}")
        self.assertEqual(set(got) - set(high), set(), "profile samples of a thread/mode no counter has")
        for key in set(low) | set(high):
            self.assertLessEqual(low.get(key, 0), got.get(key, 0), key)
            self.assertLessEqual(got.get(key, 0), high.get(key, 0), key)
        self.assertEqual(sum(v for _, v in h.select(after, "kvmprof_profile_samples_dropped_total")), 0)
        # The window asked for reaches back before the agent started: the profile says how much it holds.
        held = [c for c in profile_all.comments if "complete for the last" in c]
        up, serving = answered - self.agent_started, asked - self.agent_serving  # when the profile was made
        print(f"  comments: {profile_all.comments}; the agent has run {up:.0f} s")
        self.assertEqual(len(held), 1, profile_all.comments)
        self.assertTrue(serving - 1 <= int(re.search(r"last (\d+) s only", held[0]).group(1)) <= up + 1, held[0])

        # The last N seconds: what the counters grew by over the same N seconds. Counters grow
        # at each drain by the samples taken since the drain before (the cycle at ts drains
        # every ring just before it stamps ts); the profile holds the samples *taken* in
        # [request - N, request] that were drained by then. So they differ only by the samples
        # taken between ts0 and request - N, and between ts1 and the request: at most the
        # thread's sampling rate over those gaps (a vCPU thread gets at most 1 CPU-second per
        # second, so at most FREQ samples per second; the emulator threads at 3x their
        # measured rate) plus 50 ms per edge for the drain preceding the stamp.
        ts0, s0 = self.fresh_snapshot()
        ts1, s1 = ts0, s0
        while ts1 < ts0 + n - 0.5:
            ts1, s1 = self.agent.next_snapshot(after=ts1)
        t_req = time.time()
        profile = self.profile(f"seconds={n}&domain={vm.name}")
        t_done = time.time()
        growth = sum(counters(s1, vm).values()) - sum(counters(s0, vm).values())
        emu_rate = (sum(v for k, v in counters(s1, vm).items() if k[0] == "emulator") -
                    sum(v for k, v in counters(s0, vm).items() if k[0] == "emulator")) / (ts1 - ts0)
        edges = abs(t_req - n - ts0) + (t_done - ts1) + 2 * 0.05
        allowed = (FREQ + 3 * emu_rate + 1) * edges + 2
        count, nanos = total(profile.samples), sum(s.nanos for s in profile.samples)
        cpu = sum(v for _, v in h.select(s1, "kvmprof_vcpu_cpu_seconds_total", uuid=vm.uuid, vcpu="0")) - \
            sum(v for _, v in h.select(s0, "kvmprof_vcpu_cpu_seconds_total", uuid=vm.uuid, vcpu="0"))
        print(f"  last {n} s: profile {count} samples, {nanos / 1e9:.3f} s; counters grew by {growth:.0f} over "
              f"{ts1 - ts0:.2f} s (emulator {emu_rate:.1f}/s); edges {edges * 1000:.0f} ms -> allowed +-{allowed:.0f}"
              f"; vCPU CPU time meanwhile {cpu:.2f} s")
        self.assertGreater(growth, FREQ * n * 0.05, "the busy VM got almost no CPU: the host is too loaded to measure")
        self.assertLessEqual(abs(count - growth), allowed)
        # cpu-clock: each sample's period is the timer's, 1/FREQ s of the thread's CPU time.
        self.assertEqual(profile.sample_types, [("samples", "count"), ("cpu", "nanoseconds")])
        self.assertEqual(profile.period_type, ("cpu", "nanoseconds"))
        self.assertAlmostEqual(profile.period, 1e9 / FREQ, delta=1)
        self.assertAlmostEqual(nanos, count * profile.period, delta=0.001 * nanos)
        self.assertLessEqual(abs(nanos - growth * profile.period), allowed * profile.period)
        self.assertEqual(profile.duration_nanos, n * 1_000_000_000)
        self.assertTrue((t_req - n - 0.5) * 1e9 <= profile.time_nanos <= (t_done - n + 0.5) * 1e9, profile.time_nanos)

        # Labels: the documented keys and values, on every sample.
        for s in profile.samples:
            self.assertEqual(s.labels.get("domain"), vm.name)
            self.assertEqual(s.labels.get("uuid"), vm.uuid)
            self.assertIn(s.labels.get("execution_mode"), EXECUTION_MODES.values())
            if "vcpu" in s.num:
                self.assertEqual(s.num["vcpu"], (0, "vcpu"))
                self.assertNotIn("thread", s.labels)
            else:
                self.assertEqual(s.labels.get("thread"), "emulator")
            self.assertEqual(set(s.labels) | set(s.num), {"domain", "uuid", "execution_mode", "vcpu" if "vcpu" in s.num else "thread"})
        vcpu = profile.select(vcpu=0)
        modes = collections.Counter()
        for s in vcpu:
            modes[s.labels["execution_mode"]] += s.count
        guest = [s for s in vcpu if s.labels["execution_mode"].startswith("Guest")]
        print(f"  vCPU 0 by execution_mode: {dict(modes)}; guest IPs {sorted({hex(s.frames[0].address) for s in guest})}")
        # Guest samples are the guest's IP alone, in a guest mapping: the boot sector spinning.
        for s in guest:
            self.assertEqual(len(s.frames), 1)
            self.assertIn(s.frames[0].mapping["file"], ("[guest_kernel]", "[guest_user]"))
            self.assertIn(s.frames[0].address, BOOT_SECTOR)

        # The KVM emulation path (this host: nested PVM emulates the real-mode guest in KVM).
        kernel = [s for s in vcpu if s.labels["execution_mode"] == "Host Kernel"]
        self.assertGreater(total(kernel), 0.9 * total(vcpu))
        shares = {f: cum_share(kernel, f) for f in ("kvm_vcpu_ioctl", "kvm_arch_vcpu_ioctl_run", "x86_emulate_instruction")}
        print(f"  vCPU host_kernel samples inside: " + ", ".join(f"{f} {v:.1%}" for f, v in shares.items()))
        self.assertGreater(shares["kvm_vcpu_ioctl"], 0.9)
        self.assertGreater(shares["kvm_arch_vcpu_ioctl_run"], 0.9)
        self.assertGreater(shares["x86_emulate_instruction"], 0.5)

        # Every kernel frame is named as /proc/kallsyms names its address, in the kernel mapping.
        kallsyms = Kallsyms()
        frames = {(f.address, f.function, f.mapping["file"]) for p in (profile, profile_all) for s in p.samples
                  for f in s.frames if f.mapping and f.mapping["file"] == "[kernel.kallsyms]"}
        wrong = [(hex(a), fn, sorted(kallsyms.at(a))) for a, fn, _ in frames if fn not in kallsyms.at(a)]
        print(f"  {len(frames)} kernel frames, {len(wrong)} named otherwise than /proc/kallsyms: {wrong[:5]}")
        self.assertEqual(wrong, [])
        kernel_mappings = {id(f.mapping): f.mapping for s in profile.samples for f in s.frames
                           if f.mapping and f.mapping["file"] == "[kernel.kallsyms]"}
        for m in kernel_mappings.values():
            self.assertTrue(m["has_functions"])
            self.assertGreaterEqual(m["start"], 0xFFFF800000000000)

        raw = self.check_with_go(profile, os.path.join(self.tmp.name, "busy.pb.gz"))
        if raw is not None:
            top = self.go_pprof("-top", "-nodecount=8", os.path.join(self.tmp.name, "busy.pb.gz"))
            self.assertEqual(top.returncode, 0, top.stderr)
            print("  go tool pprof -top:\n" + "\n".join("    " + l for l in top.stdout.splitlines()[4:]))
            self.assertIn("x86_emulate_instruction", top.stdout)
            self.assertIn(f"domain:[{vm.name}]", raw)

    def test_2_top_functions_agree_with_perf_record(self):
        if not PERF:
            self.skipTest("perf not found (Debian: apt-get install linux-perf)")
        vm, n = self.busy, 20
        tid = vm.vcpu_tid(0)
        perf = PerfRecordCallchains(tid, os.path.join(self.tmp.name, "perf.data"), FREQ)
        try:
            t_start = time.monotonic()
            time.sleep(n + 0.5)
            self.fresh_snapshot()
            t_req = time.monotonic()
            profile = self.profile(f"seconds={n}&domain={vm.name}")
            t_end = time.monotonic()
        finally:
            perf.stop()
        self.assertLess(t_start, t_req - n, "perf did not record the whole window")
        agent = self_counts(profile.select(vcpu=0))
        recorded = perf.leaves(t_req - n, t_end)
        n_a, n_p = sum(agent.values()), sum(recorded.values())
        self.assertGreater(min(n_a, n_p), 500, "too few samples to compare: the busy VM got almost no CPU")
        if GO:
            # go tool pprof -tagfocus=vcpu=0, as README shows it: the same vCPU total and, per
            # function, the same self (flat) counts as the decoder's.
            path = os.path.join(self.tmp.name, "vcpu0.pb.gz")
            with open(path, "wb") as f:
                f.write(profile.body)
            top = self.go_pprof("-top", "-sample_index=samples", "-nodefraction=0", "-nodecount=1000000",
                                "-tagfocus=vcpu=0", path)
            self.assertEqual(top.returncode, 0, top.stderr)
            self.assertEqual(int(re.search(r"Showing nodes accounting for (\d+),", top.stdout).group(1)), n_a)
            flat = {m.group(2): int(m.group(1)) for m in
                    re.finditer(r"^\s*(\d+)\s+[\d.]+%\s+[\d.]+%\s+\d+\s+[\d.]+%\s+(\S+)\s*$", top.stdout, re.M)}
            for f, c in agent.most_common(10):
                if f != UNNAMED:
                    self.assertEqual(flat.get(f), c, f"go tool pprof's flat count of {f}")

        def top5(counts):
            return [f for f, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if f != UNNAMED][:5]
        top_a, top_p = top5(agent), top5(recorded)
        share = lambda counts, nn, f: counts.get(f, 0) / nn
        rows = sorted(set(top5(agent) + top5(recorded)) | set(f for f, _ in (agent + recorded).most_common(10)),
                      key=lambda f: -(share(agent, n_a, f) + share(recorded, n_p, f)))
        print(f"\n  vCPU 0 of {vm.name}, {n} s, cpu-clock {FREQ} Hz: kvmprof {n_a} samples, perf record {n_p} "
              f"(ratio {n_a / n_p:.3f})")
        print(f"  {'function (self)':44} {'kvmprof':>15} {'perf':>15} {'diff':>7} {'bound':>7}")
        for f in rows:
            b = share_bound(agent.get(f, 0), n_a, recorded.get(f, 0), n_p)
            print(f"  {f[:44]:44} {share(agent, n_a, f):7.2%} ({agent.get(f, 0):5}) {share(recorded, n_p, f):7.2%} "
                  f"({recorded.get(f, 0):5}) {(share(agent, n_a, f) - share(recorded, n_p, f)) * 100:+6.2f} "
                  f"{b * 100:6.2f}{'  top5 kvmprof' if f in top_a else ''}{'  top5 perf' if f in top_p else ''}")
        # Two identical timers on one thread: the counts differ only by the window edges (see
        # test_sampling test 3); the edges here are within ~50 ms of each other.
        self.assertAlmostEqual(n_a / n_p, 1.0, delta=0.15)
        for f in rows:
            self.assertLessEqual(abs(share(agent, n_a, f) - share(recorded, n_p, f)),
                                 share_bound(agent.get(f, 0), n_a, recorded.get(f, 0), n_p), f)
        # The top 5 sets: a function in one top 5 and not in the other must be a statistical tie
        # with the other's 5th place (its share there within the bound of that 5th share).
        # Measured here: the 5th to 8th functions lie within a point of each other, so the sets
        # may swap one of them from run to run; the first places are far apart.
        self.assertGreaterEqual(len(set(top_a) & set(top_p)), 3, (top_a, top_p))
        for mine, theirs, counts, nn, name in ((top_a, top_p, recorded, n_p, "perf"), (top_p, top_a, agent, n_a, "kvmprof")):
            fifth = counts[theirs[-1]]
            for f in set(mine) - set(theirs):
                self.assertGreaterEqual(share(counts, nn, f) + share_bound(counts.get(f, 0), nn, fifth, nn),
                                        share(counts, nn, theirs[-1]), f"{f} is far below {name}'s top 5")

    def test_3_emulator_threads_are_named_from_qemu_dynsym(self):
        vm, n = self.busy, 10
        stop = threading.Event()
        calls = [0]

        def monitor():  # QEMU's main loop answers the monitor: HMP over QMP, in QEMU's own code
            while not stop.is_set():
                for cmd in ("xp /4096xb 0", "info registers"):
                    subprocess.run(h.VIRSH + ["qemu-monitor-command", vm.name, "--hmp", cmd], capture_output=True)
                    calls[0] += 1
        worker = threading.Thread(target=monitor, daemon=True)
        worker.start()
        try:
            time.sleep(n + 0.5)
            self.fresh_snapshot()
            profile = self.profile(f"seconds={n}&domain={vm.name}")
        finally:
            stop.set()
            worker.join(timeout=30)
        emulator = profile.select(thread="emulator")
        exe = os.path.realpath(f"/proc/{vm.pid()}/exe")
        elf = ElfFunctions(exe)
        qemu_frames = collections.Counter()
        unnamed = collections.Counter()
        for s in profile.samples:
            for f in s.frames:
                if f.mapping and f.mapping["file"] == exe:
                    (qemu_frames if f.function else unnamed)[(f.function, f.address, s.thread(), id(f.mapping))] += s.count
        named_emulator = collections.Counter()
        for (fn, _, thread, _), c in qemu_frames.items():
            if thread == "emulator":
                named_emulator[fn] += c
        modes = collections.Counter()
        for s in emulator:
            modes[s.labels["execution_mode"]] += s.count
        print(f"\n  {calls[0]} monitor commands in {n} s; emulator samples {dict(modes)}; QEMU functions on emulator "
              f"threads: {named_emulator.most_common(12)}; unnamed QEMU frames: {sum(unnamed.values())}")
        self.assertGreater(total(emulator), 20, "the emulator threads were hardly sampled")
        self.assertTrue(named_emulator, "no emulator sample named a QEMU function")
        # Every named QEMU frame: a .dynsym function whose range holds the frame's address, in
        # the QEMU mapping that carries the binary's build-id. An unnamed one lies in no
        # .dynsym function (a static function: .symtab is stripped).
        mappings = {}
        for (fn, address, _, mid), _ in list(qemu_frames.items()) + list(unnamed.items()):
            frame = next(f for s in profile.samples for f in s.frames if id(f.mapping) == mid and f.address == address)
            mappings[mid] = frame.mapping
            vaddr = elf.vaddr(frame)
            self.assertIsNotNone(vaddr, f"{hex(address)} outside QEMU's LOAD segments")
            if fn:
                self.assertIn(fn, elf.containing(vaddr), f"{hex(address)} (ELF {hex(vaddr)}) named {fn}")
            else:
                self.assertEqual(elf.containing(vaddr), set(), f"{hex(address)} (ELF {hex(vaddr)}) not named")
        for m in mappings.values():
            self.assertEqual(m["build_id"], elf.build_id)
            self.assertLessEqual(m["start"], m["limit"])
        self.assertTrue(any(m["has_functions"] for m in mappings.values()))
        self.check_with_go(profile, os.path.join(self.tmp.name, "emulator.pb.gz"))
        if GO:
            top = self.go_pprof("-top", "-tagfocus=thread=emulator", "-nodefraction=0", "-nodecount=1000000",
                                os.path.join(self.tmp.name, "emulator.pb.gz"))
            self.assertEqual(top.returncode, 0, top.stderr)
            self.assertTrue(any(fn in top.stdout for fn in named_emulator), top.stdout)

    def test_4_flame_graph_and_folded_stacks(self):
        vm, n = self.busy, 10
        self.fresh_snapshot()
        headers, svg = self.text(f"/debug/pprof/flamegraph?domain={vm.name}&seconds={n}")
        profile = self.profile(f"seconds={n}&domain={vm.name}")
        self.assertEqual(headers["Content-Type"], "image/svg+xml")
        root = ET.fromstring(svg)  # well-formed XML
        self.assertEqual(root.tag, f"{SVG_NS}svg")
        title = svg_title(root)
        frames = svg_frames(root)
        m = re.fullmatch(r"kvmprof: VM '(.+)', last (\d+) s, ([\d,]+) samples", title)
        self.assertTrue(m, title)
        self.assertEqual((m.group(1), int(m.group(2))), (vm.name, n))
        svg_total = int(m.group(3).replace(",", ""))
        # No script and nothing fetched.
        self.assertFalse([e for e in root.iter() if e.tag.endswith("script") or e.tag.endswith("foreignObject")])
        self.assertNotRegex(svg, r"(href|src)\s*=|url\(\s*['\"]?(https?|file):")
        # The frames: the root holds the title's count; shares as hover text; the VM and the
        # thread grey, code colored; widths as the samples.
        roots = [f for f in frames if f[1] == svg_total and f[2] == 100.0]
        self.assertTrue(roots, "no frame holds all the samples")
        full_width = max(f[4] for f in frames)
        for name, count, percent, fill, width in frames:
            self.assertLessEqual(count, svg_total, name)
            self.assertAlmostEqual(percent, 100 * count / svg_total, delta=0.01, msg=name)
            self.assertAlmostEqual(width, full_width * count / svg_total, delta=0.02 + full_width * 0.001, msg=name)
        names = {f[0] for f in frames}
        for name, count, _, fill, _ in frames:
            if name in (vm.name, "vcpu 0", "emulator"):
                self.assertTrue(grey(fill), f"{name}: {fill}")
            elif name in ("x86_emulate_instruction", "kvm_vcpu_ioctl"):
                self.assertFalse(grey(fill), f"{name}: {fill}")
        self.assertIn(vm.name, names)
        self.assertIn("vcpu 0", names)
        top = [f for f, _ in self_counts(profile.samples).most_common() if f != UNNAMED][:5]
        print(f"\n  flame graph: '{title}', {len(frames)} frames, {len(svg)} bytes; the pprof's top 5 by self: {top}")
        for f in top:
            self.assertIn(f, names)
        # Two requests a moment apart see nearly the same last 10 s: the cumulative shares agree.
        for f in ("kvm_arch_vcpu_ioctl_run", "x86_emulate_instruction"):
            in_svg = sum(c for name, c, _, _, _ in frames if name == f) / svg_total
            self.assertAlmostEqual(in_svg, cum_share(profile.samples, f), delta=0.05, msg=f)
        self.assertAlmostEqual(svg_total / total(profile.samples), 1.0, delta=0.2)

        path = os.path.join(self.tmp.name, "flame.svg")
        with open(path, "w") as f:
            f.write(svg)
        if CHROMIUM:
            png = os.path.join(self.tmp.name, "flame.png")
            shot = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={png}",
                                   "--window-size=1300,900", f"--user-data-dir={os.path.join(self.tmp.name, 'chromium')}",
                                   f"file://{path}"], capture_output=True, text=True, timeout=120,
                                  env=dict(os.environ, HOME=self.goenv["HOME"]))
            self.assertTrue(os.path.exists(png), shot.stderr[-2000:])
            width, height, size, variety = png_summary(png)
            print(f"  chromium screenshot: {width}x{height}, {size} bytes, {variety} distinct bytes in its image data")
            self.assertEqual((width, height), (1300, 900))
            self.assertGreater(size, 10_000)  # a blank 1300x900 PNG is about 4 KB
            self.assertGreater(variety, 32)  # text and colored frames, not one color
        else:
            print("  chromium not found: no screenshot")

        # Folded stacks, exactly: the idle VM's samples since the agent started hardly change,
        # so the same profile can be asked for three ways between two identical folded answers.
        q = f"domain={IDLE}&seconds={WINDOW}"

        def four():
            return (self.text(f"/debug/pprof/flamegraph?{q}&format=folded")[1], self.profile(q),
                    self.text(f"/debug/pprof/flamegraph?{q}")[1], self.text(f"/debug/pprof/flamegraph?{q}&format=folded")[1])
        folded_text, idle_profile, idle_svg, _ = self.stable(four, key=lambda x: x)
        folded = parse_folded(folded_text)
        print(f"  idle VM since the agent started: {len(folded)} folded stacks, {sum(folded.values())} samples; "
              f"pprof {total(idle_profile.samples)}; flame graph title '{svg_title(ET.fromstring(idle_svg))}'")
        self.assertEqual(sum(folded.values()), total(idle_profile.samples))
        self.assertEqual(int(re.search(r"([\d,]+) samples$", svg_title(ET.fromstring(idle_svg))).group(1).replace(",", "")),
                         total(idle_profile.samples))
        for stack in folded:
            frames = stack.split(";")
            self.assertEqual(frames[0], IDLE)
            self.assertRegex(frames[1], r"^(vcpu 0|emulator)$")
        self.assertEqual(normalize_folded(folded), folded_from_pprof(idle_profile, IDLE))
        self.assertTrue(any(f.endswith("_[k]") for stack in folded for f in stack.split(";")))

    def test_5_profile_command(self):
        cli = lambda *args, cwd=self.tmp.name: subprocess.run([AGENT, "profile"] + list(args), capture_output=True,
                                                               text=True, cwd=cwd, timeout=120)
        listen = f"127.0.0.1:{self.port}"
        svg = os.path.join(self.tmp.name, "cli.svg")
        r = cli("--domain", BUSY, "--format", "svg", "-o", svg, "--listen", listen, "--seconds", "10")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"wrote {svg}", r.stderr)
        self.assertIn(f"VM '{BUSY}', last 10 s", svg_title(ET.parse(svg).getroot()))

        pb = os.path.join(self.tmp.name, "cli.pb.gz")
        r = cli("--domain", BUSY, "--format", "pprof", "-o", pb, "--listen", listen)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(pb, "rb") as f:
            profile = Pprof(f.read())
        self.assertTrue(profile.samples)
        self.assertEqual({s.labels["domain"] for s in profile.samples}, {BUSY})
        self.assertEqual(profile.duration_nanos, 30 * 1_000_000_000)  # the default seconds
        if GO:
            raw = self.go_pprof("-raw", pb)
            self.assertEqual(raw.returncode, 0, raw.stderr)
            self.assertIn("x86_emulate_instruction", raw.stdout)

        # Without -o: kvmprof-NAME.folded in the working directory.
        r = cli("--domain", BUSY, "--format", "folded", "--listen", listen, "--seconds", "5")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.tmp.name, f"kvmprof-{BUSY}.folded")) as f:
            self.assertTrue(parse_folded(f.read()))

        r = cli("--domain", "kvmprof-prof-nope", "--format", "svg", "-o", os.path.join(self.tmp.name, "nope.svg"),
                "--listen", listen)
        print(f"\n  unknown VM: exit {r.returncode}: {r.stderr.strip()}")
        self.assertEqual(r.returncode, 2)
        self.assertIn("404", r.stderr)
        self.assertIn("no running VM named 'kvmprof-prof-nope'", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp.name, "nope.svg")))

        r = cli("--domain", BUSY, "--seconds", "0", "-o", os.path.join(self.tmp.name, "zero.pb.gz"), "--listen", listen)
        self.assertEqual(r.returncode, 2, r.stderr)

        nobody = f"127.0.0.1:{h.free_port()}"
        r = cli("--domain", BUSY, "-o", os.path.join(self.tmp.name, "none.pb.gz"), "--listen", nobody)
        print(f"  no agent at {nobody}: exit {r.returncode}: {r.stderr.strip()}")
        self.assertEqual(r.returncode, 1)
        self.assertIn("is kvmprof-agent running?", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp.name, "none.pb.gz")))

    def test_6_bad_requests_scopes_and_concurrent_requests(self):
        bad = [("seconds=-1", "seconds"), ("seconds=999999", "seconds"), ("seconds=abc", "seconds"),
               ("seconds=1e3", "seconds"), ("seconds=0", "seconds"), (f"seconds={WINDOW + 1}", "seconds"),
               ("seconds=", "seconds"), ("seconds=10&bogus=1", "unknown parameter 'bogus'"),
               ("seconds=10&seconds=20", "'seconds' given twice"), (f"domain={BUSY}&domain={IDLE}", "'domain' given twice"),
               ("mode=bogus", "mode must be"), ("mode=host,bogus", "mode must be"), ("format=bogus", "format must be"),
               ("seconds=%zz", "%-escape")]
        for path in ("/debug/pprof/profile", "/debug/pprof/flamegraph"):
            for query, reason in bad:
                status, headers, body = fetch(self.port, f"{path}?{query}")
                self.assertEqual(status, 400, f"{path}?{query}: {body!r}")
                self.assertIn(reason, body.decode(), f"{path}?{query}")
            for query in ("domain=kvmprof-prof-nope", "uuid=00000000-0000-0000-0000-000000000000",
                          f"domain={BUSY}&uuid={self.idle.uuid}"):
                status, _, body = fetch(self.port, f"{path}?{query}")
                self.assertEqual(status, 404, f"{path}?{query}: {body!r}")
                self.assertIn("no running VM", body.decode())
        print(f"\n  e.g. seconds=1e3 -> 400 {fetch(self.port, '/debug/pprof/profile?seconds=1e3')[2].decode().strip()!r}")

        # The defaults and the HTTP details: 30 s; pprof is gzip itself (no Content-Encoding,
        # as Go's net/http/pprof); SVG and folded are gzipped for a client that asks; HEAD.
        self.assertEqual(self.profile(f"domain={BUSY}").duration_nanos, 30 * 1_000_000_000)
        headers, folded = self.text(f"/debug/pprof/flamegraph?domain={BUSY}&seconds=5&format=folded")
        self.assertTrue(headers["Content-Type"].startswith("text/plain"), headers["Content-Type"])
        self.assertTrue(parse_folded(folded))
        for target, kind in ((f"/debug/pprof/profile?domain={BUSY}&seconds=5", "pprof"),
                             (f"/debug/pprof/flamegraph?domain={BUSY}&seconds=5", "svg")):
            request = urllib.request.Request(f"http://127.0.0.1:{self.port}{target}", headers={"Accept-Encoding": "gzip"})
            with urllib.request.urlopen(request, timeout=60) as r:
                encoding, body = r.headers.get("Content-Encoding"), r.read()
            if kind == "pprof":
                self.assertIsNone(encoding)
                Pprof(body)
            else:
                self.assertEqual(encoding, "gzip")
                self.assertIn(BUSY, svg_title(ET.fromstring(gzip.decompress(body))))
            request = urllib.request.Request(f"http://127.0.0.1:{self.port}{target}", method="HEAD")
            with urllib.request.urlopen(request, timeout=60) as r:
                self.assertEqual((r.status, r.read()), (200, b""))
                self.assertEqual(r.headers["Content-Type"], "application/octet-stream" if kind == "pprof" else "image/svg+xml")

        # format= works on either path.
        status, headers, body = fetch(self.port, f"/debug/pprof/flamegraph?domain={BUSY}&seconds=5&format=pprof")
        self.assertEqual((status, headers["Content-Type"]), (200, "application/octet-stream"))
        self.assertEqual({s.labels["domain"] for s in Pprof(body).samples}, {BUSY})
        status, headers, body = fetch(self.port, f"/debug/pprof/profile?domain={BUSY}&seconds=5&format=svg")
        self.assertEqual((status, headers["Content-Type"]), (200, "image/svg+xml"))
        self.assertIn(BUSY, svg_title(ET.fromstring(body)))

        # Scopes: every VM, one VM by name or UUID, some modes.
        everything = self.profile(f"seconds={WINDOW}")
        self.assertEqual({s.labels["domain"] for s in everything.samples}, {BUSY, IDLE})
        self.assertEqual({(s.labels["domain"], s.labels["uuid"]) for s in everything.samples},
                         {(BUSY, self.busy.uuid), (IDLE, self.idle.uuid)})
        for query, want in ((f"domain={IDLE}", IDLE), (f"uuid={self.busy.uuid}", BUSY),
                            (f"domain={BUSY}&uuid={self.busy.uuid}", BUSY)):
            self.assertEqual({s.labels["domain"] for s in self.profile(f"seconds=30&{query}").samples}, {want}, query)
        for mode, allowed in (("host_kernel", {"Host Kernel"}), ("host_user", {"Host User"}),
                              ("host", {"Host Kernel", "Host User"}), ("guest", {"Guest Kernel", "Guest User"}),
                              ("host_user,guest_kernel", {"Host User", "Guest Kernel"}), ("hypervisor", {"Hypervisor"})):
            p = self.profile(f"seconds={WINDOW}&domain={BUSY}&mode={mode}", allow_empty=True)
            self.assertLessEqual({s.labels["execution_mode"] for s in p.samples}, allowed, mode)
            if not p.samples:
                print(f"  mode={mode}: no samples; comments {p.comments}")
        # The idle VM's modes add up to its whole profile (asked between two identical answers).
        q = f"seconds={WINDOW}&domain={IDLE}"
        got = self.stable(lambda: [self.profile(q)] + [self.profile(f"{q}&mode={m}", allow_empty=True)
                                                        for m in ("host_kernel", "host_user", "guest")] + [self.profile(q)],
                          key=lambda p: sorted((s.thread(), s.labels["execution_mode"], tuple(f.address for f in s.frames),
                                                s.count) for s in p.samples))
        whole = by_thread_and_mode(got[0].samples)
        parts = sum((by_thread_and_mode(p.samples) for p in got[1:4]), collections.Counter())
        print(f"  idle VM by thread and mode: {dict(whole)}")
        self.assertEqual(parts, whole)

        # 20 requests at once, each client honoring Retry-After until it has its profile. One
        # profile is built at a time: the others get 503 with Retry-After: 1; none is reset, every
        # client gets its profile in the end, and /metrics keeps answering throughout.
        n_threads, max_attempts = 20, 30
        barrier = threading.Barrier(n_threads + 1)
        answers, failures, scrapes, served = collections.Counter(), [], [], [False] * n_threads
        done = threading.Event()

        def client(i):
            target = f"/debug/pprof/profile?seconds={WINDOW}" if i % 2 == 0 else f"/debug/pprof/flamegraph?seconds={WINDOW}"
            barrier.wait()
            for _ in range(max_attempts):
                try:
                    status, headers, body = raw_get(self.port, target)
                except Exception as e:  # a reset, a closed connection, a timeout
                    failures.append(f"{target}: {type(e).__name__}: {e}")
                    return
                answers[status] += 1
                if status == 503:
                    if headers.get("retry-after") != "1" or b"try again" not in body:
                        failures.append(f"503 without Retry-After: 1 and a reason: {headers} {body!r}")
                        return
                    # As a polite client does: at least Retry-After, with jitter so the 19
                    # waiting clients do not all come back in the same millisecond.
                    time.sleep(int(headers["retry-after"]) * (1 + random.random()))
                    continue
                if status != 200:
                    failures.append(f"{target}: {status} {body[:200]!r}")
                    return
                try:
                    if "profile" in target:
                        self.assertEqual({p.labels["domain"] for p in Pprof(body).samples}, {BUSY, IDLE})
                    else:
                        self.assertIn("all VMs", svg_title(ET.fromstring(body)))
                except Exception as e:
                    failures.append(f"{target}: 200 with a bad body: {e}")
                served[i] = True
                return

        def scraper():
            barrier.wait()
            while not done.is_set():
                t = time.monotonic()
                try:
                    status, _, body = raw_get(self.port, "/metrics", timeout=10)
                    scrapes.append((time.monotonic() - t, status, b"kvmprof_vms" in body))
                except Exception as e:
                    scrapes.append((time.monotonic() - t, repr(e), False))
                time.sleep(0.05)
        threads = [threading.Thread(target=client, args=(i,)) for i in range(n_threads)]
        metrics = threading.Thread(target=scraper)
        for t in threads + [metrics]:
            t.start()
        t0 = time.monotonic()
        for t in threads:
            t.join(timeout=300)
        storm = time.monotonic() - t0
        done.set()
        metrics.join(timeout=30)
        print(f"  {n_threads} clients at once, each until it got its profile: {storm:.1f} s, answers {dict(answers)}, "
              f"failures {failures[:5]}; "
              f"/metrics answered {len(scrapes)} times meanwhile, slowest {max(s[0] for s in scrapes) * 1000:.0f} ms")
        self.assertEqual(failures, [])
        self.assertEqual(served, [True] * n_threads)
        self.assertEqual(answers[200], n_threads)
        self.assertTrue(scrapes)
        self.assertTrue(all(s[1] == 200 and s[2] for s in scrapes), scrapes)
        self.assertLess(max(s[0] for s in scrapes), 2.0)
        self.assertIsNone(self.agent.proc.poll())

    def test_7_vm_destroyed_while_profiles_are_fetched(self):
        vm = self.idle
        answers = []  # (time, target, status, body)
        stop = threading.Event()

        def loop():
            i = 0
            while not stop.is_set():
                target = (f"/debug/pprof/profile?seconds={WINDOW}&domain={vm.name}" if i % 2 == 0 else
                          f"/debug/pprof/flamegraph?seconds={WINDOW}&domain={vm.name}&format=folded")
                i += 1
                try:
                    status, _, body = raw_get(self.port, target)
                except Exception as e:
                    status, body = repr(e), b""
                answers.append((time.time(), target, status, body))
        worker = threading.Thread(target=loop)
        worker.start()
        try:
            time.sleep(1.5)
            t_destroy = time.time()
            h.run(h.VIRSH + ["destroy", vm.uuid])
            t_destroyed = time.time()
            h.wait_for("404s for the destroyed VM", lambda: sum(1 for a in answers if a[2] == 404) >= 10, timeout=15, step=0.05)
        finally:
            stop.set()
            worker.join(timeout=60)
        statuses = [a[2] for a in answers]
        first_404 = next(i for i, s in enumerate(statuses) if s == 404)
        print(f"\n  {len(answers)} answers: {dict(collections.Counter(statuses))}; the first 404 "
              f"{answers[first_404][0] - t_destroy:.2f} s after virsh destroy began (it took {t_destroyed - t_destroy:.2f} s)")
        self.assertEqual(set(statuses) - {200, 404}, set(), [a[:3] for a in answers if a[2] not in (200, 404)])
        self.assertGreater(first_404, 0, "no 200 before the VM was destroyed")
        self.assertNotIn(200, statuses[first_404:], "a 200 after the VM was gone")
        # A VM whose QEMU process has exited leaves in that cycle (1 s here).
        self.assertLess(answers[first_404][0] - t_destroyed, 3)
        empty = []  # 200s without samples: there must be none
        for t, target, status, body in answers:
            if status == 404:  # gone from the sampler (at once), then from the snapshot (next cycle)
                text = body.decode()
                self.assertTrue(f"no running VM named '{vm.name}'" in text or
                                f"VM '{vm.name}' is no longer sampled: it stopped" in text, text)
            elif "profile" in target:
                p = Pprof(body)
                self.assertLessEqual({s.labels["domain"] for s in p.samples}, {vm.name})
                if not p.samples:
                    empty.append((round(t - t_destroy, 2), p.comments))
            else:
                self.assertTrue(all(line.startswith(vm.name + ";") for line in body.decode().splitlines()))
                if not body.strip():
                    empty.append((round(t - t_destroy, 2), "folded"))
        print(f"  200s without samples: {len(empty)} {empty[:2]}")
        self.assertEqual(empty, [], "a stopped VM's profile is 404, not an empty 200")
        self.assertIsNone(self.agent.proc.poll(), "the agent exited")
        h.wait_for("the destroyed VM to leave /metrics", lambda: f'uuid="{vm.uuid}"' not in self.agent.scrape_text(),
                   timeout=10)
        rest = self.profile(f"seconds={WINDOW}")
        print(f"  after it: every-VM profile holds {sorted({s.labels['domain'] for s in rest.samples})}")
        self.assertIn(BUSY, {s.labels["domain"] for s in rest.samples})


def set_agent(path):
    global AGENT
    AGENT = path


if __name__ == "__main__":
    sys.exit(h.main(set_agent))
