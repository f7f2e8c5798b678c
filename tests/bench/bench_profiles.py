#!/usr/bin/env python3
"""Benchmark: what keeping and serving profiles costs, kvmprof-agent against `perf record` +
`perf report` / `perf script` over the same vCPU threads and the same window. Prints figures
and ratios; it is not a pass/fail test. Needs root and perf.

For WINDOW seconds the agent samples busy VMs (cpu-clock, 999 Hz, kernel callchains) while
`perf record -g` samples their vCPU threads the same way. Then:
  - memory: the agent's profile store (kvmprof_profile_store_bytes: samples, stacks, symbols)
    per sample, and its RSS growth over the window, against perf.data's size per sample;
  - time to a symbolized answer: the agent's /debug/pprof/profile (gzipped pprof) and
    /debug/pprof/flamegraph (SVG) for the whole window, best and median of RUNS, against
    `perf report --stdio --no-children` and `perf script` on perf.data (what an operator runs
    to get the same from perf);
  - the agent's CPU per profile request.

Usage: bench_profiles.py --agent PATH [--vms 2] [--window 60] [--runs 5]
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness as h  # noqa: E402
from bench import cpu_seconds, rss_mib  # noqa: E402

HZ = 999


def timed(fn, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


def get(url):
    with urllib.request.urlopen(url, timeout=120) as r:
        return r.read()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--agent", required=True)
    p.add_argument("--vms", type=int, default=2)
    p.add_argument("--window", type=int, default=60)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="kvmprof-bench-profiles-")
    os.chmod(tmp.name, 0o755)
    h.libvirt_up()
    vms, agent, perf = [], None, None
    try:
        vms = [h.Vm(tmp.name, f"kvmprof-bench-p{i}", vcpus=1, busy=255) for i in range(args.vms)]
        config = (f"default:\n  events: []\n  sampling: {{event: cpu-clock, frequency: {HZ}, threads: vcpu, "
                  f"callchain: kernel}}\nprofiles: {{window: {args.window}s}}\n")
        agent = h.Agent(os.path.abspath(args.agent), tmp.name, interval="1s", extra_config=config)
        time.sleep(2)
        base = f"http://127.0.0.1:{agent.port}"
        get(f"{base}/debug/pprof/profile?seconds=1")  # kallsyms loaded once, before the window
        rss0 = rss_mib(agent.proc.pid)
        data = os.path.join(tmp.name, "perf.data")
        tids = ",".join(str(vm.vcpu_tid(0)) for vm in vms)
        perf = subprocess.Popen(["perf", "record", "-q", "-g", "-e", "cpu-clock", "-F", str(HZ), "-t", tids, "-o", data],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(args.window)
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=120)
        time.sleep(1.5)  # a cycle drains the rings
        s = agent.scrape()
        held = h.value(s, "kvmprof_profile_samples")
        stacks = h.value(s, "kvmprof_profile_stacks")
        parts = {l["part"]: v for l, v in h.select(s, "kvmprof_profile_store_bytes")}
        dropped = sum(v for _, v in h.select(s, "kvmprof_profile_samples_dropped_total"))
        rss1 = rss_mib(agent.proc.pid)
        query = f"seconds={args.window}"
        cpu0 = cpu_seconds(agent.proc.pid)
        pb_best, pb_med, pb = timed(lambda: get(f"{base}/debug/pprof/profile?{query}"), args.runs)
        svg_best, svg_med, svg = timed(lambda: get(f"{base}/debug/pprof/flamegraph?{query}"), args.runs)
        cpu_per_request = (cpu_seconds(agent.proc.pid) - cpu0) / (2 * args.runs)
        report = ["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "sym"]
        rep_best, rep_med, _ = timed(lambda: subprocess.run(report, capture_output=True, check=True), args.runs)
        script = ["perf", "script", "-i", data]
        scr_best, scr_med, _ = timed(lambda: subprocess.run(script, capture_output=True, check=True), args.runs)
        tids_out = subprocess.run(["perf", "script", "-i", data, "-F", "tid"], capture_output=True, text=True).stdout
        n_perf = len(tids_out.splitlines())  # one line per sample
        size = os.path.getsize(data)
        store = parts.get("samples", 0) + parts.get("stacks", 0)
        print(f"host: {os.cpu_count()} CPUs; {args.vms} busy VM(s) x 1 vCPU; cpu-clock {HZ} Hz, kernel callchains, "
              f"{args.window} s window")
        print(f"\nmemory for {held:.0f} samples ({stacks:.0f} distinct stacks, {dropped:.0f} dropped by the bounds):")
        print(f"  kvmprof store: {store / 1024:.0f} KiB = {store / max(held, 1):.0f} B/sample "
              f"(samples {parts.get('samples', 0) / 1024:.0f} KiB, stacks {parts.get('stacks', 0) / 1024:.0f} KiB); "
              f"symbols {parts.get('symbols', 0) / 2**20:.1f} MiB (kallsyms, QEMU's .dynsym); "
              f"agent RSS {rss0:.1f} -> {rss1:.1f} MiB")
        print(f"  perf.data:     {size / 1024:.0f} KiB for {n_perf} samples = {size / max(n_perf, 1):.0f} B/sample")
        print(f"  ratio kvmprof store / perf.data per sample: {(store / max(held, 1)) / (size / max(n_perf, 1)):.2f}")
        print(f"\ntime to a symbolized answer for the whole window (best / median of {args.runs}):")
        print(f"  kvmprof pprof:      {1000 * pb_best:7.1f} / {1000 * pb_med:7.1f} ms ({len(pb) / 1024:.0f} KiB)")
        print(f"  kvmprof flame SVG:  {1000 * svg_best:7.1f} / {1000 * svg_med:7.1f} ms ({len(svg) / 1024:.0f} KiB)")
        print(f"  perf report:        {1000 * rep_best:7.1f} / {1000 * rep_med:7.1f} ms")
        print(f"  perf script:        {1000 * scr_best:7.1f} / {1000 * scr_med:7.1f} ms")
        print(f"  ratio kvmprof pprof / perf report: {pb_best / rep_best:.2f}; agent CPU per request "
              f"{1000 * cpu_per_request:.1f} ms")
    finally:
        if perf and perf.poll() is None:
            perf.kill()
        if agent:
            agent.stop()
        for vm in vms:
            vm.destroy()
        tmp.cleanup()


if __name__ == "__main__":
    main()
