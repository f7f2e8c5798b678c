#!/usr/bin/env python3
"""Scale table of kvmprof-agent on a synthetic host of 10, 100 and 1,000 VMs x 4 vCPUs.

Each run is kvmprof_synthetic_host (tests/bench/synthetic_host.cpp): the real daemon with real
perf software events on real threads, which live in a separate process (the thread farm), so
everything measured here from outside (/proc/PID, HTTP scrapes) is the agent's alone. Per VM
count: a counting run (4 software events) and a sampling run (the same plus cpu-clock at 99 Hz).
The agent raises RLIMIT_NOFILE to the hard limit it is given (--nofile, else this shell's). It
keeps root's CAP_IPC_LOCK, which stands for the unit's LimitMEMLOCK=1G while the rings stay below
that; --memlock BYTES runs it without CAP_IPC_LOCK under that RLIMIT_MEMLOCK instead. Prints
figures and ratios against the targets of issue 11; not a pass/fail test. Root.
Usage: bench_scale.py --build DIR [--vms 10,100,1000] [--cycles 20] [--scrapes 20] [--memlock B]
"""
import argparse
import gzip
import math
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness as h  # noqa: E402
from bench import cpu_seconds  # noqa: E402  (the same measure as the libvirt exporter benchmark)

EVENTS = ["task-clock", "context-switches", "cpu-migrations", "page-faults"]
INTERVAL = 1.0  # seconds; figures per cycle are converted to the default 5 s interval
DEFAULT_INTERVAL = 5.0
VCPUS = 4
MIB = 1024 * 1024


def write_config(path, sampling):
    with open(path, "w") as f:
        f.write(f'version: 1\nlisten: "127.0.0.1:0"\ninterval: {INTERVAL:g}s\nevents: [{", ".join(EVENTS)}]\n')
        if sampling:
            f.write("default:\n  sampling: {event: cpu-clock, frequency: 99}\n")


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+)", f.read(), re.M).group(1))


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def one(text, name):
    """The value of an unlabelled series, without parsing the whole scrape."""
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


class Host:
    """One run of kvmprof_synthetic_host with the RLIMIT_NOFILE asked for (and with --memlock, that
    RLIMIT_MEMLOCK without CAP_IPC_LOCK)."""

    def __init__(self, binary, vms, config, args, log):
        memlock = [f"--memlock={args.memlock}"] if args.memlock else []
        no_ipc_lock = ["setpriv", "--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock", "--"] if args.memlock else []
        cmd = ["prlimit", f"--nofile={args.nofile}", *memlock, "--", *no_ipc_lock,
               binary, str(vms), config, str(args.burn)]
        self.stderr = open(log, "w")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        m = re.match(r"port (\d+) farm (\d+)", self.proc.stdout.readline())
        if not m:
            self.proc.wait()
            self.stderr.close()
            raise RuntimeError(f"kvmprof_synthetic_host did not start: {open(log).read()[-2000:]}")
        self.url = f"http://127.0.0.1:{m.group(1)}/metrics"
        self.pid, self.farm = self.proc.pid, int(m.group(2))

    def scrape(self, compressed=False):
        """(seconds, body bytes, text) of one scrape; compressed as Prometheus asks."""
        req = urllib.request.Request(self.url, headers={"Accept-Encoding": "gzip"} if compressed else {})
        start = time.perf_counter()
        with urllib.request.urlopen(req, timeout=60) as r:
            body = r.read()
        took = time.perf_counter() - start
        return took, body, (gzip.decompress(body) if compressed else body).decode()

    def wait_ready(self, vms, timeout):
        """Every vCPU thread is found, and the agent's fds stopped changing (counters and rings open)."""
        start = time.monotonic()
        series = re.compile(r"^kvmprof_vcpu_wait_seconds_total{", re.M)
        h.wait_for("every vCPU thread", lambda: len(series.findall(self.scrape()[2])) == vms * VCPUS,
                   timeout=timeout, step=0.5)
        fds = -1
        while fds != open_fds(self.pid):
            fds = open_fds(self.pid)
            time.sleep(2 * INTERVAL)
        return time.monotonic() - start

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.stderr.close()


def cycle_window(host, cycles):
    """Agent CPU and collection wall time per cycle over `cycles` cycles without scrapes; the CPU's
    standard error from 4 quarters of the window (each as long as its cycles at the interval)."""
    text0 = host.scrape()[2]
    marks = [cpu_seconds(host.pid)]
    for _ in range(4):
        time.sleep(cycles * INTERVAL / 4)
        marks.append(cpu_seconds(host.pid))
    text1 = host.scrape()[2]
    quarters = [1000 * (b - a) / (cycles / 4) for a, b in zip(marks, marks[1:])]
    growth = lambda name: one(text1, name) - one(text0, name)  # noqa: E731
    n, wall = growth("kvmprof_collection_duration_seconds_count"), growth("kvmprof_collection_duration_seconds_sum")
    samples = [sum(v for _, v in h.select(h.parse_metrics(t), "kvmprof_vcpu_samples_total")) for t in (text0, text1)]
    return {"cpu_ms": 1000 * (marks[-1] - marks[0]) / n, "cpu_se": statistics.stdev(quarters) / 2,
            "wall_ms": 1000 * wall / n, "samples": (samples[1] - samples[0]) / n, "text": text1}


def scrape_window(host, count, cpu_ms_per_cycle):
    """Latency of `count` gzip scrapes, each of a snapshot not scraped before (as Prometheus,
    scraping less often than the agent collects, finds them), and the CPU each costs the agent."""
    text = host.scrape()[2]
    last = one(text, "kvmprof_last_collection_timestamp_seconds")
    cycles0 = one(text, "kvmprof_collection_duration_seconds_count")
    latencies, sizes = [], None
    cpu0 = cpu_seconds(host.pid)
    for _ in range(3 * count):
        time.sleep(INTERVAL)
        took, body, text = host.scrape(compressed=True)
        stamp = one(text, "kvmprof_last_collection_timestamp_seconds")
        if stamp != last:
            latencies.append(took)
            sizes = len(body), len(text.encode()), sum(1 for line in text.splitlines() if line and line[0] != "#")
        last = stamp
        if len(latencies) == count:
            break
    cpu = cpu_seconds(host.pid) - cpu0
    cycles = one(text, "kvmprof_collection_duration_seconds_count") - cycles0
    return {"median_ms": 1000 * statistics.median(latencies), "max_ms": 1000 * max(latencies),
            "render_ms": max(0.0, 1000 * cpu - cycles * cpu_ms_per_cycle) / len(latencies),
            "gzip": sizes[0], "plain": sizes[1], "series": sizes[2]}


def perf_stat_ms(farm, seconds, args):
    """The peer: CPU per interval of `perf stat -I 1000 --per-thread` counting the same events on the
    same threads, grouped as the agent groups them."""
    tids = [t for t in os.listdir(f"/proc/{farm}/task") if t != str(farm)]
    with tempfile.NamedTemporaryFile("r", suffix=".perfstat") as out:
        perf = subprocess.Popen(["prlimit", f"--nofile={args.nofile}", "--", "perf", "stat", "-e",
                                 "{" + ",".join(EVENTS) + "}", "--per-thread", "-t", ",".join(tids), "-I", "1000",
                                 "-x,", "-o", out.name], stderr=subprocess.DEVNULL)
        stamps = lambda: len({line.split(",")[0] for line in open(out.name) if "task-clock" in line})  # noqa: E731
        h.wait_for("perf stat's first interval", lambda: stamps() > 0, timeout=120, step=0.2)
        n0, cpu0 = stamps(), cpu_seconds(perf.pid)
        time.sleep(seconds)
        n1, cpu1 = stamps(), cpu_seconds(perf.pid)
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=60)
    return 1000 * (cpu1 - cpu0) / max(1, n1 - n0)


def notes(text, log):
    """What degraded: limit actions, sources down, open errors, lost samples, agent warnings."""
    s = h.parse_metrics(text)
    out = [f"{l['action']}: {l.get('event', '')} ({l['policy']})" for l, _ in h.select(s, "kvmprof_limit_action_info")]
    out += [f"down: {l['source']}" for l, v in h.select(s, "kvmprof_source_up") if v == 0]
    out += [f"open errors {l['event']} {l['errno']}: {v:.0f}" for l, v in h.select(s, "kvmprof_perf_open_errors_total")]
    lost = sum(v for _, v in h.select(s, "kvmprof_samples_lost_total"))
    out += [f"samples lost: {lost:.0f}"] if lost else []
    warnings = sorted({re.sub(r"\d+", "N", line.strip())[:160] for line in open(log)
                       if "warning" in line or "error" in line})
    return out + [f"log: {w}" for w in warnings]


def run(binary, vms, sampling, args, tmp):
    kind = "sampling" if sampling else "counting"
    config, log = os.path.join(tmp, f"{kind}.yaml"), os.path.join(tmp, f"agent-{vms}-{kind}.log")
    write_config(config, sampling)
    host = Host(binary, vms, config, args, log)
    try:
        r = {"vms": vms, "ready_s": host.wait_ready(vms, timeout=600)}
        r.update(cycle_window(host, args.cycles))
        if sampling:
            r["ring_mib"] = one(r["text"], "kvmprof_sample_ring_bytes") / MIB
        else:
            r.update(scrape_window(host, args.scrapes, r["cpu_ms"]))
            r["perf_ms"] = perf_stat_ms(host.farm, args.cycles, args) if args.peer else None
        text = r.pop("text")
        r.update(rss=status_kib(host.pid, "VmRSS") / 1024, hwm=status_kib(host.pid, "VmHWM") / 1024,
                 fds=open_fds(host.pid), notes=notes(text, log), degraded="kvmprof_limit_action_info{" in text)
        needed = vms * VCPUS * (len(EVENTS) + 2 + sampling)  # counters, ring, stat and schedstat per thread
        if needed > args.nofile:
            r["notes"].insert(0, f"needs about {needed} fds (per vCPU thread: {len(EVENTS)} counters, "
                                 f"{'a ring, ' if sampling else ''}stat, schedstat) > RLIMIT_NOFILE {args.nofile}")
        return r
    finally:
        host.stop()


def table(title, columns, rows):
    print(f"\n{title}")
    print("  ".join(f"{name:>{width}}" for name, width, _ in columns))
    for r in rows:
        print("  ".join(f"{fmt(r):>{width}}" for _, width, fmt in columns))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", required=True, help="build directory holding tests/kvmprof_synthetic_host")
    p.add_argument("--vms", default="10,100,1000")
    p.add_argument("--cycles", type=int, default=20, help="cycles per CPU measurement")
    p.add_argument("--scrapes", type=int, default=20)
    p.add_argument("--burn", type=float, default=0.25, help="share of one core the stand-in vCPUs burn in all")
    p.add_argument("--nofile", type=int, default=resource.getrlimit(resource.RLIMIT_NOFILE)[1],
                   help="RLIMIT_NOFILE of the agent (the unit sets 1048576; above this shell's hard limit it "
                        "takes CAP_SYS_RESOURCE)")
    p.add_argument("--memlock", type=int, help="RLIMIT_MEMLOCK bytes, without CAP_IPC_LOCK (the unit: 1G)")
    p.add_argument("--no-peer", dest="peer", action="store_false", help="skip perf stat on the same threads")
    args = p.parse_args()
    binary = os.path.join(os.path.abspath(args.build), "tests", "kvmprof_synthetic_host")
    mlock_kb = int(open("/proc/sys/kernel/perf_event_mlock_kb").read())
    print(f"host: {os.cpu_count()} CPUs, Linux {os.uname().release}; {VCPUS} vCPU threads per VM in a separate "
          f"process burning {args.burn:g} of one core in all; interval {INTERVAL:g} s; events {', '.join(EVENTS)}")
    memlock = f"RLIMIT_MEMLOCK {args.memlock // 1024} KiB without CAP_IPC_LOCK" if args.memlock else "CAP_IPC_LOCK"
    print(f"agent limits: RLIMIT_NOFILE {args.nofile}, {memlock}; kernel.perf_event_mlock_kb {mlock_kb} "
          f"(x {os.cpu_count()} CPUs, per user)")
    counting, sampled = [], []
    with tempfile.TemporaryDirectory(prefix="kvmprof-scale-") as tmp:
        for vms in [int(v) for v in args.vms.split(",")]:
            started = time.monotonic()
            counting.append(run(binary, vms, False, args, tmp))
            sampled.append(run(binary, vms, True, args, tmp))
            load = open("/proc/loadavg").read().split()[:3]
            print(f"{vms} VMs measured in {time.monotonic() - started:.0f} s (load average {' '.join(load)})",
                  flush=True)
    at5 = lambda ms: 100 * ms / 1000 / DEFAULT_INTERVAL  # noqa: E731  % of one core at the 5 s interval
    table("counting (4 software events per vCPU thread); CPU per cycle, %core at the 5 s interval", [
        ("vms", 5, lambda r: r["vms"]), ("threads", 7, lambda r: r["vms"] * VCPUS),
        ("ready_s", 7, lambda r: f"{r['ready_s']:.1f}"), ("series", 7, lambda r: r["series"]),
        ("fds", 6, lambda r: r["fds"]), ("rss_mib", 7, lambda r: f"{r['rss']:.1f}"),
        ("hwm_mib", 7, lambda r: f"{r['hwm']:.1f}"), ("cpu_ms", 11, lambda r: f"{r['cpu_ms']:.2f}±{r['cpu_se']:.2f}"),
        ("%core@5s", 8, lambda r: f"{at5(r['cpu_ms']):.3f}"), ("cycle_ms", 8, lambda r: f"{r['wall_ms']:.2f}"),
        ("scrape_med", 10, lambda r: f"{r['median_ms']:.1f}"), ("scrape_max", 10, lambda r: f"{r['max_ms']:.1f}"),
        ("render_cpu", 10, lambda r: f"{r['render_ms']:.1f}"), ("bytes", 9, lambda r: r["plain"]),
        ("gzip", 8, lambda r: r["gzip"]),
        ("perf_stat_ms", 12, lambda r: "-" if r["perf_ms"] is None else f"{r['perf_ms']:.2f}")], counting)
    print("  (scrape_* ms: latency of gzip scrapes of fresh snapshots; render_cpu: agent CPU ms per such scrape; "
          "perf_stat_ms: CPU per 1 s interval of perf stat --per-thread on the same threads and events)")
    base = {r["vms"]: r for r in counting}

    def extra(r, per_sample=False):
        """Sampling's CPU per cycle (or per sample, in us) over counting's, with its standard error;
        "-" where a limit made the two runs count differently."""
        b = base[r["vms"]]
        if r["degraded"] or b["degraded"] or (per_sample and not r["samples"]):
            return "-"
        k = 1000 / r["samples"] if per_sample else 1
        return f"{k * (r['cpu_ms'] - b['cpu_ms']):.2f}±{k * math.hypot(r['cpu_se'], b['cpu_se']):.2f}"

    table("sampling cpu-clock at 99 Hz (the same events besides)", [
        ("vms", 5, lambda r: r["vms"]), ("ready_s", 7, lambda r: f"{r['ready_s']:.1f}"),
        ("fds", 6, lambda r: r["fds"]), ("rss_mib", 7, lambda r: f"{r['rss']:.1f}"),
        ("ring_mib", 8, lambda r: f"{r['ring_mib']:.1f}"), ("samples/cycle", 13, lambda r: f"{r['samples']:.1f}"),
        ("cpu_ms", 11, lambda r: f"{r['cpu_ms']:.2f}±{r['cpu_se']:.2f}"),
        ("extra_ms", 11, extra), ("us/sample", 13, lambda r: extra(r, per_sample=True))], sampled)
    print("  (extra_ms: CPU per cycle over the counting run's, '-' where a limit made them count differently; "
          "us/sample: that extra per sample, ring upkeep included; ± standard errors)")
    table("per VM (linear growth keeps these flat)", [
        ("vms", 5, lambda r: r["vms"]), ("series/vm", 9, lambda r: f"{r['series'] / r['vms']:.1f}"),
        ("cpu_us/vm", 9, lambda r: f"{1000 * r['cpu_ms'] / r['vms']:.1f}"),
        ("fds/vm", 6, lambda r: f"{r['fds'] / r['vms']:.1f}"),
        ("rss_kib/vm", 10, lambda r: f"{1024 * r['rss'] / r['vms']:.0f}"),
        ("gzip_b/vm", 9, lambda r: f"{r['gzip'] / r['vms']:.0f}"),
        ("scrape_us/vm", 12, lambda r: f"{1000 * r['median_ms'] / r['vms']:.1f}")], counting)
    for runs, what in ((counting, "counting"), (sampled, "sampling")):
        for r in runs:
            for note in r["notes"]:
                print(f"note ({r['vms']} VMs, {what}): {note}")
    print("\ntargets:")
    for vms, label, value, target, unit in (
            (1000, "RSS counting", lambda r: r["rss"], 64, "MiB"),
            (100, "CPU at 5 s", lambda r: at5(r["cpu_ms"]), 0.5, "% of one core"),
            (1000, "scrape latency (max)", lambda r: r["max_ms"], 100, "ms")):
        if vms in base:
            print(f"  {label} at {vms} VMs x {VCPUS} vCPUs: {value(base[vms]):.3f} {unit}, target <= {target} "
                  f"(ratio {value(base[vms]) / target:.2f})")
    if len(counting) > 1:
        lo, hi = counting[0], counting[-1]
        scale = hi["vms"] / lo["vms"]
        for label, key in (("CPU per cycle", "cpu_ms"), ("series", "series"), ("fds", "fds"), ("gzip bytes", "gzip")):
            print(f"  growth {lo['vms']} -> {hi['vms']} VMs (x{scale:g}): {label} x{hi[key] / lo[key]:.1f} "
                  f"(linear: x{scale:g})")
        print(f"  RSS per added VM: {1024 * (hi['rss'] - lo['rss']) / (hi['vms'] - lo['vms']):.0f} KiB")


if __name__ == "__main__":
    main()
