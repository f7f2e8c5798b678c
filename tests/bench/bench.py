#!/usr/bin/env python3
"""Benchmark: kvmprof-agent against prometheus-libvirt-exporter on the same host and VMs.

Prints figures and ratios; it is not a pass/fail test. Needs root.
Usage: bench.py --agent PATH [--vms 10] [--scrapes 50] [--seconds 20]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness as h  # noqa: E402

def cpu_seconds(pid):
    """CPU time of all live threads of pid, from schedstat (ns) for precision."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total / 1e9


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024


def scrape_latencies(url, count):
    out = []
    for _ in range(count):
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as r:
            r.read()
        out.append(time.perf_counter() - start)
    return out


def answers(url):
    try:
        return scrape_latencies(url, 1)
    except OSError:
        return None


def cycles(agent):
    return h.value(agent.scrape(), "kvmprof_collection_duration_seconds_count")


def strace_calls(pid, seconds):
    """Every syscall of every agent thread over `seconds`, classified by what it touched:
    perf fds, procfs files, sockets, or nothing (futex, poll, timers)."""
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as out:
        proc = subprocess.Popen(["strace", "-f", "-y", "-qq", "-o", out.name, "-p", str(pid)],
                                stderr=subprocess.DEVNULL)
        time.sleep(seconds)
        proc.send_signal(2)
        proc.wait(timeout=30)
        kinds, names = {}, {}
        for line in open(out.name):
            m = re.match(r"\d+\s+(\w+)\((.*)", line)
            if not m or m.group(1) in ("exit", "restart_syscall"):
                continue
            name, args = m.groups()
            kind = ("perf" if "perf_event" in args.split(",")[0] else
                    "procfs" if "</proc/" in args.split(",")[0] or '"/proc/' in args else
                    "socket" if "socket:" in args.split(",")[0] else "other")
            kinds[kind] = kinds.get(kind, 0) + 1
            names[name] = names.get(name, 0) + 1
        return kinds, names


def measure_agent(agent, groups, seconds):
    pid = agent.proc.pid
    c0, cpu0, t0 = cycles(agent), cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    c1, cpu1, t1 = cycles(agent), cpu_seconds(pid), time.monotonic()
    n = c1 - c0
    print(f"agent: {n:.0f} cycles in {t1 - t0:.1f} s; CPU {cpu1 - cpu0:.3f} s = "
          f"{100 * (cpu1 - cpu0) / (t1 - t0):.2f}% of one core; {1000 * (cpu1 - cpu0) / n:.2f} ms CPU per cycle")
    s = agent.scrape()
    dur_sum = h.value(s, "kvmprof_collection_duration_seconds_sum")
    dur_n = h.value(s, "kvmprof_collection_duration_seconds_count")
    print(f"agent: mean cycle duration {1000 * dur_sum / dur_n:.2f} ms (wall)")
    c0 = cycles(agent)
    kinds, names = strace_calls(pid, seconds)
    n = cycles(agent) - c0
    total = sum(kinds.values())
    print(f"agent: syscalls per cycle {total / n:.1f} over {n:.0f} cycles (strace -f, all threads); "
          f"perf reads {kinds.get('perf', 0) / n:.1f} for {groups} counter groups (the floor: one read each), "
          f"procfs 2 preads per QEMU thread plus a reconcile every 10 intervals")
    for kind in ("perf", "procfs", "socket", "other"):
        print(f"    {kind:<8} {kinds.get(kind, 0) / n:8.1f} per cycle")
    print("    by name: " + ", ".join(f"{k} {v / n:.1f}" for k, v in sorted(names.items(), key=lambda kv: -kv[1])[:8]))
    print(f"agent: RSS {rss_mib(pid):.1f} MiB")


def compare_scrapes(agent, exporter_url, exporter_pid, scrapes):
    rows = {}
    for name, url, pid in (("kvmprof-agent", agent.url, agent.proc.pid),
                           ("prometheus-libvirt-exporter", exporter_url, exporter_pid)):
        scrape_latencies(url, 3)  # warm up
        cpu0 = cpu_seconds(pid)
        lat = scrape_latencies(url, scrapes)
        cpu = cpu_seconds(pid) - cpu0
        rows[name] = (statistics.median(lat), statistics.mean(lat), max(lat), cpu)
        print(f"{name}: {scrapes} scrapes, latency median {1000 * rows[name][0]:.2f} ms, "
              f"mean {1000 * rows[name][1]:.2f} ms, max {1000 * rows[name][2]:.2f} ms; CPU {cpu:.3f} s")
    a, e = rows["kvmprof-agent"], rows["prometheus-libvirt-exporter"]
    print(f"ratio agent/libvirt-exporter: median latency {a[0] / e[0]:.3f} (target <= 0.2), "
          f"mean latency {a[1] / e[1]:.3f}")


def perf_fds(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[perf_event]"
        except OSError:
            pass
    return n


def growth(agent_binary, sizes, seconds):
    """Counters, syscalls and CPU per cycle with real VMs, as their number grows."""
    print(f"{'vms':>4} {'vcpu_threads':>12} {'perf_counters':>13} {'syscalls/cycle':>14} "
          f"{'perf_reads/cycle':>16} {'cpu_ms/cycle':>12}")
    tmp = tempfile.TemporaryDirectory(prefix="kvmprof-growth-")
    os.chmod(tmp.name, 0o755)
    vms = []
    try:
        for size in sizes:
            while len(vms) < size:
                vms.append(h.Vm(tmp.name, f"kvmprof-growth-{len(vms)}", vcpus=1, busy=1))
            agent = h.Agent(agent_binary, tmp.name, interval="1s")
            try:
                h.wait_for("counters", lambda: len(h.select(agent.scrape(), "kvmprof_vcpu_events_total",
                                                            event="task-clock")) == size, timeout=60)
                pid = agent.proc.pid
                c0, cpu0 = cycles(agent), cpu_seconds(pid)
                time.sleep(seconds)  # CPU without strace attached
                cpu_per_cycle = (cpu_seconds(pid) - cpu0) / (cycles(agent) - c0)
                c0 = cycles(agent)
                kinds, _ = strace_calls(pid, seconds)
                n = cycles(agent) - c0
                print(f"{size:>4} {size:>12} {perf_fds(pid):>13} {sum(kinds.values()) / n:>14.1f} "
                      f"{kinds.get('perf', 0) / n:>16.1f} {1000 * cpu_per_cycle:>12.2f}")
            finally:
                agent.stop()
    finally:
        for vm in vms:
            vm.destroy()
        tmp.cleanup()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--agent", required=True)
    p.add_argument("--growth", action="store_true", help="counters/syscalls/CPU per cycle for 2, 4, 8 VMs")
    p.add_argument("--vms", type=int, default=10)
    p.add_argument("--scrapes", type=int, default=50)
    p.add_argument("--seconds", type=float, default=20)
    args = p.parse_args()
    if args.growth:
        growth(os.path.abspath(args.agent), [2, 4, 8], args.seconds)
        return
    tmp = tempfile.TemporaryDirectory(prefix="kvmprof-bench-")
    os.chmod(tmp.name, 0o755)
    h.libvirt_up()
    vms = []
    exporter = agent = None
    try:
        # busy=1: each guest spins briefly per timer tick, so 10 VMs leave the 2 cores mostly free.
        vms = [h.Vm(tmp.name, f"kvmprof-bench-{i}", vcpus=1, busy=1) for i in range(args.vms)]
        agent = h.Agent(os.path.abspath(args.agent), tmp.name, interval="1s")
        h.wait_for("every VM's counters", lambda: len(h.select(agent.scrape(), "kvmprof_vcpu_events_total",
                                                                event="task-clock")) == args.vms, timeout=60)
        port = h.free_port()
        exporter = subprocess.Popen(["prometheus-libvirt-exporter", f"--web.listen-address=127.0.0.1:{port}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        exporter_url = f"http://127.0.0.1:{port}/metrics"
        h.wait_for("the libvirt exporter", lambda: answers(exporter_url), timeout=30)
        print(f"host: {os.cpu_count()} CPUs; {args.vms} VMs x 1 vCPU; agent interval 1 s")
        measure_agent(agent, groups=args.vms, seconds=args.seconds)
        compare_scrapes(agent, exporter_url, exporter.pid, args.scrapes)
    finally:
        if exporter:
            exporter.terminate()
        if agent:
            agent.stop()
        for vm in vms:
            vm.destroy()
        tmp.cleanup()


if __name__ == "__main__":
    main()
