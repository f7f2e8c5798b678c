"""Helpers for tests that run the real agent against real libvirtd, QEMU and Prometheus."""
import atexit
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(TOP, "deploy")
VIRSH = ["virsh", "-q", "-c", "qemu:///system"]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, predicate, timeout=30.0, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# --- Prometheus text format -------------------------------------------------------------

_UNESCAPE = {"\\": "\\", '"': '"', "n": "\n"}


def _parse_labels(text, i):
    labels = {}
    while text[i] != "}":
        eq = text.index("=", i)
        key = text[i:eq].strip(" ,")
        i = eq + 2  # skip ="
        value = []
        while text[i] != '"':
            if text[i] == "\\":
                value.append(_UNESCAPE[text[i + 1]])
                i += 2
            else:
                value.append(text[i])
                i += 1
        labels[key] = "".join(value)
        i += 1
        if text[i] == ",":
            i += 1
    return labels, i + 1


def parse_metrics(text):
    """Returns [(name, labels dict, value)] for every sample line. Raises on a series that
    appears twice: promtool does not catch that, and Prometheus would silently keep one."""
    samples = []
    seen = set()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
        name, i = m.group(0), m.end()
        labels = {}
        if line[i] == "{":
            labels, i = _parse_labels(line, i + 1)
        key = (name, frozenset(labels.items()))
        if key in seen:
            raise AssertionError(f"duplicate series in the scrape: {line}")
        seen.add(key)
        samples.append((name, labels, float(line[i:].split()[0])))
    return samples


def select(samples, name, **labels):
    return [(l, v) for n, l, v in samples if n == name and all(l.get(k) == v2 for k, v2 in labels.items())]


def value(samples, name, **labels):
    found = select(samples, name, **labels)
    if len(found) != 1:
        raise AssertionError(f"{name}{labels}: {len(found)} series")
    return found[0][1]


# --- libvirt and VMs --------------------------------------------------------------------

def libvirt_up():
    run(["bash", os.path.join(DEPLOY, "libvirt-up.sh")])


def stop_libvirtd():
    """Stops libvirtd (not the VMs: QEMU keeps running and libvirtd re-attaches on start)."""
    if run(["ps", "-o", "comm=", "-p", "1"]).strip() == "systemd":
        run(["systemctl", "stop", "libvirtd.service", "libvirtd.socket", "libvirtd-ro.socket",
             "libvirtd-admin.socket"])
        return
    subprocess.run(["pkill", "-x", "libvirtd"], check=False)
    wait_for("libvirtd to exit",
             lambda: subprocess.run(["pgrep", "-x", "libvirtd"], capture_output=True).returncode != 0)


def create_domain(name, image, vcpus, max_vcpus=None, uuid=None):
    """A transient domain booting IMAGE, as start-vm.sh makes it (KVM, else TCG), with
    `<vcpu current=vcpus>max_vcpus</vcpu>` (the rest can be hot-plugged with `virsh setvcpus
    --live`) and, when given, a fixed UUID (the same VM started again). Returns its UUID."""
    esc = lambda t: t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&apos;")
    uuid_xml = f"<uuid>{uuid}</uuid>" if uuid else ""
    errors = []
    for kind in (["kvm"] if os.access("/dev/kvm", os.W_OK) else []) + ["qemu"]:
        xml = (f"<domain type='{kind}'><name>{esc(name)}</name>{uuid_xml}<memory unit='MiB'>16</memory>"
               f"<vcpu current='{vcpus}'>{max_vcpus or vcpus}</vcpu>"
               "<os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os><devices>"
               "<emulator>/usr/bin/qemu-system-x86_64</emulator><disk type='file' device='disk'>"
               f"<driver name='qemu' type='raw'/><source file='{esc(image)}'/><target dev='hda' bus='ide'/>"
               "</disk><memballoon model='none'/></devices></domain>")
        with tempfile.NamedTemporaryFile("w", suffix=".xml") as f:
            f.write(xml)
            f.flush()
            done = subprocess.run(VIRSH + ["create", f.name], capture_output=True, text=True)
        if done.returncode == 0:
            return run(VIRSH + ["domuuid", name]).strip()
        errors.append(f"{kind}: {done.stderr.strip()}")
    raise AssertionError(f"could not start {name}: {errors}")


class Vm:
    def __init__(self, workdir, name, vcpus, busy=64, max_vcpus=None, uuid=None, image=None):
        """max_vcpus (vCPUs that `virsh setvcpus --live` can add) or uuid (the same VM again)
        start it through create_domain; image reuses a boot image (one running VM per image)."""
        self.name = name
        self.image = image or os.path.join(workdir, f"vm{abs(hash(name))}.img")
        if not image:
            run(["bash", os.path.join(DEPLOY, "make-boot-image.sh"), self.image, str(busy)])
        if max_vcpus is None and uuid is None:
            run(["bash", os.path.join(DEPLOY, "start-vm.sh"), name, self.image, str(vcpus)])
            self.uuid = run(VIRSH + ["domuuid", name]).strip()
        else:
            self.uuid = create_domain(name, self.image, vcpus, max_vcpus, uuid)
        atexit.register(self.destroy)  # also when a test's setUpClass fails

    def pid(self):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        argv = f.read().split(b"\0")
                except OSError:
                    continue
                if b"-uuid" in argv and argv[argv.index(b"-uuid") + 1].decode() == self.uuid:
                    return int(entry)
        return None

    def vcpu_tid(self, index):
        pid = self.pid()
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read().strip()
            if comm.startswith(f"CPU {index}/"):
                return int(tid)
        raise AssertionError(f"no vCPU {index} thread in {self.name}")

    def libvirt_vcpu_time(self, index):
        out = run(VIRSH + ["domstats", "--vcpu", self.uuid])
        return int(re.search(rf"vcpu\.{index}\.time=(\d+)", out).group(1))

    def destroy(self):
        subprocess.run(VIRSH + ["destroy", self.uuid], capture_output=True)


class PerfRecord:
    """`perf record -q ARGS -k mono -t TID -o PATH` in the background while a test runs: it
    fails at once if perf exits at start, stops with SIGINT (perf writes its file then), and is
    killed at exit if a test fails first. `-k mono` stamps samples with CLOCK_MONOTONIC, Python's
    time.monotonic(), so they can be cut to the agent's window."""

    def __init__(self, tid, path, args):
        self.tid, self.path = tid, path
        self.proc = subprocess.Popen(["perf", "record", "-q", *args, "-k", "mono", "-t", str(tid), "-o", path],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        atexit.register(self.kill)
        time.sleep(1.0)  # perf has opened its event and is recording
        if self.proc.poll() is not None:
            raise AssertionError(f"perf record exited {self.proc.returncode}: {self.proc.stderr.read()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=60)
        if self.proc.returncode not in (0, -signal.SIGINT):
            raise AssertionError(f"perf record exited {self.proc.returncode}: {err}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def agent_footprint(pid):
    """What the agent holds, to compare before and after: `fds` (a sorted list of fd targets,
    without the procfs fds of processes alive now: VMs of other suites come and go on this host,
    and a leaked fd of a VM that is gone still counts), `perf_fds`, `maps` (lines of
    /proc/PID/maps), `rings` (perf ring mappings) and `rss_kib`."""
    fds = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        m = re.match(r"/proc/(\d+)/", target)
        if not (m and os.path.exists(f"/proc/{m.group(1)}")):
            fds.append(target)
    with open(f"/proc/{pid}/maps") as f:
        maps = f.readlines()
    with open(f"/proc/{pid}/status") as f:
        rss = int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))
    return {"fds": sorted(fds), "perf_fds": fds.count("anon_inode:[perf_event]"), "maps": len(maps),
            "rings": sum(1 for line in maps if "[perf_event]" in line), "rss_kib": rss}


def schedstat_run_ns(tid):
    with open(f"/proc/{tid}/schedstat") as f:
        return int(f.read().split()[0])


# --- the agent and Prometheus -----------------------------------------------------------

class Agent:
    def __init__(self, binary, workdir, interval="1s", extra_config="", listen="127.0.0.1:0", args=(), wrapper=()):
        """The agent on a config of its own in `workdir`; `wrapper` runs it, e.g. setpriv."""
        self.config = os.path.join(workdir, "agent.yaml")
        with open(self.config, "w") as f:
            f.write(f"version: 1\nlisten: '{listen}'\ninterval: {interval}\n{extra_config}")
        self.log_path = os.path.join(workdir, "agent.log")
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen([*wrapper, binary, "--config", self.config, *args], stderr=self.log)
        atexit.register(self.kill)  # also when a test's setUpClass fails and tearDownClass never runs
        self.port = wait_for("the agent to listen", self._port, timeout=15)
        self.url = f"http://127.0.0.1:{self.port}/metrics"

    def _port(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"agent exited {self.proc.returncode}: {self.log_text()}")
        m = re.search(r"serving https?://(?:127\.0\.0\.1|\[::\]):(\d+)/metrics", self.log_text())
        return int(m.group(1)) if m else None

    def log_text(self):
        with open(self.log_path) as f:
            return f.read()

    def scrape_text(self):
        with urllib.request.urlopen(self.url, timeout=5) as r:
            return r.read().decode()

    def scrape(self):
        return parse_metrics(self.scrape_text())

    def next_snapshot(self, after=None):
        """Waits for a snapshot newer than `after`; returns (timestamp, samples)."""
        def newer():
            s = self.scrape()
            ts = value(s, "kvmprof_last_collection_timestamp_seconds")
            return (ts, s) if after is None or ts > after else None
        return wait_for("a new snapshot", newer, timeout=10, step=0.02)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=15)
        self.log.close()
        if self.proc.returncode != 0:  # what went wrong, before the test's directory is gone
            print(f"agent exited {self.proc.returncode}; its log ends:\n{self.log_text()[-20000:]}", file=sys.stderr)
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Prometheus:
    def __init__(self, workdir, target_port, job_extra=""):
        """Scrapes the agent every second; job_extra is more YAML for the job (indented by 4),
        e.g. scheme, tls_config and basic_auth."""
        self.port = free_port()
        config = os.path.join(workdir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global: {scrape_interval: 1s}\nscrape_configs:\n"
                    f"  - job_name: kvmprof\n    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n{job_extra}")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={workdir}/tsdb",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def query(self, promql):
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.load(r)["data"]["result"]
        except OSError:
            return []

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def promtool_check(text):
    return subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)


class PerfStatStream:
    """`perf stat -I 10 -e task-clock -t TID`: 10 ms intervals, each placed on the wall clock by
    perf's own offset from its start, so a window given in the agent's timestamps can be summed.
    perf's start-up delay shifts the window a little but does not change its length."""

    def __init__(self, tid):
        self.intervals = []  # (interval end, unix time; task-clock seconds in that interval)
        self.started = time.time()
        self.proc = subprocess.Popen(["perf", "stat", "-I", "10", "-x,", "-e", "task-clock", "-t", str(tid)],
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            fields = line.strip().split(",")
            if len(fields) > 3 and fields[3] == "task-clock":
                # "<not counted>": the thread did not run in that interval.
                ms = float(fields[1]) if fields[1].replace(".", "", 1).isdigit() else 0.0
                self.intervals.append((self.started + float(fields[0]), ms / 1000.0))

    def seconds_between(self, start, end):
        return sum(v for t, v in self.intervals if start < t <= end)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=10)
        self.reader.join(timeout=5)


def main(set_agent):
    """Runs the calling module's tests: --agent PATH is handed to set_agent; exit 77 (skipped)
    when not root, because libvirtd, QEMU and perf on other threads need it."""
    import argparse
    import sys
    import unittest
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent", required=True)
    args, rest = parser.parse_known_args()
    set_agent(os.path.abspath(args.agent))
    if os.geteuid() != 0:
        print("skipped: needs root to run libvirtd, QEMU and perf on other threads")
        return 77
    result = unittest.main(module="__main__", argv=[sys.argv[0], "-v"] + rest, exit=False).result
    return 0 if result.wasSuccessful() else 1
