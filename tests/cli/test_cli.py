#!/usr/bin/env python3
"""The commands an operator runs first, on this machine: what they print, their exit codes, and
how the agent starts, listens and stops. No VM is needed (libvirt may be down).

Usage: test_cli.py --agent PATH/kvmprof-agent
"""
import argparse
import glob
import http.server
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
import unittest
import urllib.parse
import urllib.request

AGENT = None
TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args, timeout=10):
    return subprocess.run([AGENT, *args], capture_output=True, text=True, timeout=timeout)


class Started:
    """The agent running in the background; its log in a file."""

    def __init__(self, tmp, *args):
        self.log_path = os.path.join(tmp, f"agent-{time.monotonic_ns()}.log")
        self.log = open(self.log_path, "w")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([AGENT, *args], stderr=self.log)

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def port(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.text().splitlines():
                if "serving http://" in line:
                    return int(line.rsplit(":", 1)[1].split("/")[0])
            time.sleep(0.02)
        raise AssertionError("the agent did not start serving: " + self.text())

    def stop(self):
        """SIGTERM; returns (exit code, seconds until it exited)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=10)
        self.log.close()
        return code, time.monotonic() - t0


class Cli(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="kvmprof-cli-")
        self.config = os.path.join(self.tmp.name, "agent.yaml")
        with open(self.config, "w") as f:
            f.write("version: 1\nlisten: 127.0.0.1:0\ninterval: 1s\nevents: [task-clock]\n")

    def tearDown(self):
        self.tmp.cleanup()

    def test_explain_agrees_with_the_probe(self):
        probe = json.loads(run("probe", "--json").stdout)
        has_core_pmu = any(p["core"] for p in probe["pmus"])
        out = run("explain", "cycles", "task-clock", "--config", self.config).stdout
        cycles = out.split("task-clock  (guest:")[0]
        if has_core_pmu:
            self.assertNotIn("status:    unsupported", cycles)
        else:
            self.assertIn("status:    unsupported", cycles)
            self.assertIn("no hardware PMU", cycles)
        self.assertIn("task-clock  (guest: auto)\n  status:    ok", out)

    def test_probe_reads_the_ring_page_by_structure_and_explain_shows_sampling_attrs(self):
        probe = json.loads(run("probe", "--json").stdout)
        ring = probe["ring"]
        self.assertIsNotNone(ring, "the live host's sampling ring was not probed")
        # Every kernel since 3.12 sets cap_bit0_is_deprecated; this one takes use_clockid (4.1+).
        self.assertEqual(ring["rule"], "cap_bit0_is_deprecated set: bits 2-5 trusted")
        self.assertTrue(ring["use_clockid"])
        self.assertIn("\nring:        ", run("probe").stdout)
        alone = run("explain", "--sample")
        self.assertEqual(alone.returncode, 2)
        self.assertIn("explain --sample needs the EVENTs", alone.stderr)
        out = run("explain", "--sample", "cpu-clock", "--guest", "exclude").stdout
        self.assertIn("sampling cpu-clock  (guest: exclude, explicit)\n  status:    degraded", out)
        self.assertIn("only makes kernels since 6.13 tag those samples host_kernel", out)
        for field in ("sample_type                      IDENTIFIER|IP|TID|TIME|PERIOD|CALLCHAIN",
                      "exclude_guest                    1", "sample_id_all                    1",
                      "use_clockid                      1", "freq                             1"):
            self.assertIn(field, out)
        with open(self.config, "a") as f:
            f.write("default:\n  sampling: {event: cycles, precise: 1}\n")
        fixture = os.path.join(TOP, "tests/fixtures/cpus/intel-skylake-client-new-ucode")
        out = run("explain", "--config", self.config, "--root", fixture).stdout
        self.assertIn("sampling cycles:p  (guest: auto)\n  status:    degraded", out)
        self.assertIn("precise_ip                       1", out)
        self.assertIn("[intel-pebs-host-only]", out)

    def test_check_config_refuses_what_is_not_a_regular_file_without_blocking(self):
        fifo = os.path.join(self.tmp.name, "fifo.yaml")
        os.mkfifo(fifo)
        link = os.path.join(self.tmp.name, "zero.yaml")
        os.symlink("/dev/zero", link)
        for path, kind in ((fifo, "a FIFO"), (link, "a character device"), (self.tmp.name, "a directory")):
            result = run("check-config", path, timeout=5)
            self.assertEqual(result.returncode, 2, path)
            self.assertIn(f"{path}:1:1: cannot read: {path} is {kind}", result.stderr)

    def test_check_config_without_a_file_says_so(self):
        if os.path.exists("/etc/kvmprof/agent.yaml"):
            self.skipTest("/etc/kvmprof/agent.yaml exists on this machine")
        result = run("check-config")
        self.assertEqual(result.returncode, 2)
        self.assertIn("no FILE given and /etc/kvmprof/agent.yaml does not exist", result.stderr)
        self.assertNotIn("ok", result.stdout)

    def test_a_bad_listen_is_a_usage_error_everywhere(self):
        result = run("--listen", "::1:9477", "--config", self.config)
        self.assertEqual(result.returncode, 2)
        self.assertIn("IPv6 addresses go in brackets", result.stderr)
        bad = os.path.join(self.tmp.name, "bad.yaml")
        with open(bad, "w") as f:
            f.write('version: 1\nlisten: "localhost:99999"\n')
        for args in (("check-config", bad), ("--config", bad)):
            result = run(*args)
            self.assertEqual(result.returncode, 2, args)
            self.assertIn(f"{bad}:2:9: 'listen' port must be a number from 0 to 65535", result.stderr)

    def test_a_port_in_use_says_so(self):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            result = run("--listen", f"127.0.0.1:{port}", "--config", self.config)
        self.assertEqual(result.returncode, 1)
        self.assertIn("has this port", result.stderr)

    def test_ipv6_head_and_unknown_paths(self):
        agent = Started(self.tmp.name, "--listen", "[::1]:0", "--config", self.config)
        try:
            url = f"http://[::1]:{agent.port()}"
            with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
                body = r.read().decode()
                self.assertEqual(r.headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
            self.assertIn("kvmprof_build_info", body)
            with urllib.request.urlopen(urllib.request.Request(url + "/metrics", method="HEAD"), timeout=5) as r:
                self.assertEqual(r.read(), b"")
                self.assertEqual(int(r.headers["Content-Length"]), len(body.encode()))
            with self.assertRaises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(url + "/nope", timeout=5)
            self.assertEqual(e.exception.code, 404)
        finally:
            code, _ = agent.stop()
        self.assertEqual(code, 0)

    def test_the_systemd_unit_reloads_with_sighup_and_runs_without_a_config_file(self):
        with open(os.path.join(TOP, "deploy", "kvmprof-agent.service")) as f:
            unit = f.read()
        lines = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
        self.assertEqual(lines["ExecStart"], "/usr/sbin/kvmprof-agent")  # the default file, or defaults
        self.assertEqual(lines["ExecReload"], "/bin/kill -HUP $MAINPID")
        self.assertEqual((lines["Type"], lines["NotifyAccess"], lines["WatchdogSec"]), ("notify", "main", "30s"))
        self.assertNotIn("ExecStartPre", lines)
        if subprocess.run(["which", "systemd-analyze"], capture_output=True).returncode == 0:
            copy = os.path.join(self.tmp.name, "kvmprof-agent.service")
            with open(copy, "w") as f:
                f.write(unit.replace("/usr/sbin/kvmprof-agent", AGENT))
            result = subprocess.run(["systemd-analyze", "verify", copy], capture_output=True, text=True)
            self.assertEqual(result.returncode, 0, result.stderr)
        if os.path.exists("/etc/kvmprof/agent.yaml"):
            self.skipTest("/etc/kvmprof/agent.yaml exists on this machine")
        agent = Started(self.tmp.name, "--listen", "127.0.0.1:0")  # ExecStart, on a free port
        try:
            agent.port()
            self.assertIn("no /etc/kvmprof/agent.yaml; using built-in defaults", agent.text())
            agent.proc.send_signal(signal.SIGHUP)  # systemctl reload
            deadline = time.monotonic() + 5
            while "no config file to reload" not in agent.text() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertIn("SIGHUP: running on built-in defaults; there is no config file to reload", agent.text())
            self.assertIsNone(agent.proc.poll())
        finally:
            code, _ = agent.stop()
        self.assertEqual(code, 0)

    def test_serves_at_once_and_stops_within_2_s_while_probing_many_tracepoints(self):
        ids = sorted(glob.glob("/sys/kernel/tracing/events/*/*/id"))
        if os.geteuid() != 0 or len(ids) < 300:
            self.skipTest("needs root and tracefs with 300 tracepoints")
        names = [p.split("/")[-3] + ":" + p.split("/")[-2] for p in ids][:300]
        with open(self.config, "w") as f:
            f.write("version: 1\nlisten: 127.0.0.1:0\ninterval: 1s\nevents: [" +
                    ", ".join(f'"{n}"' for n in names) + "]\n")
        agent = Started(self.tmp.name, "--config", self.config)
        port = agent.port()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            self.assertIn("kvmprof_vms", r.read().decode())
        serving_after = time.monotonic() - agent.started
        time.sleep(2)  # well inside probing: 300 tracepoints take > 10 s here
        probed = agent.text().count(": ok, counts all")
        self.assertNotIn("applied", agent.text())
        code, took = agent.stop()
        print(f"\n  serving {serving_after:.2f} s after start; {probed} of 300 probed after 2 s; "
              f"SIGTERM took {took:.2f} s")
        self.assertLess(serving_after, 1.5)
        self.assertLess(took, 2.0)
        self.assertEqual(code, 0)
        events = [line for line in agent.text().splitlines() if ": ok, counts all" in line]
        self.assertEqual(len(events), len(set(events)), "an event was probed twice")

    def test_profile_cli_and_the_pyroscope_push_without_vms(self):
        """The profile command and deploy/pyroscope-push.sh against an agent with no VM: the
        profile is empty but valid pprof, and the push is the request Pyroscope's /ingest
        documents (format=pprof, name with labels, from and until), caught by a local server."""
        agent = Started(self.tmp.name, "--config", self.config)
        try:
            listen = f"127.0.0.1:{agent.port()}"
            out = os.path.join(self.tmp.name, "all.pb.gz")
            result = run("profile", "--listen", listen, "--seconds", "5", "-o", out)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn("go tool pprof -top", result.stderr)
            raw = go_pprof_raw(out)
            self.assertIn("PeriodType: cpu nanoseconds", raw)
            missing = run("profile", "--listen", listen, "--domain", "nope")
            self.assertEqual(missing.returncode, 2)
            self.assertIn("no running VM named 'nope'", missing.stderr)
            self.assertEqual(run("profile", "--listen", listen, "--seconds", "x").returncode, 2)
            posts = []

            class Ingest(http.server.BaseHTTPRequestHandler):
                def do_POST(self):
                    body = self.rfile.read(int(self.headers["Content-Length"]))
                    posts.append((self.path, self.headers["Content-Type"], body))
                    self.send_response(200)
                    self.end_headers()

                def log_message(self, *args):
                    pass

            server = http.server.HTTPServer(("127.0.0.1", 0), Ingest)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            push = subprocess.run(["bash", os.path.join(TOP, "deploy", "pyroscope-push.sh"), "--once", "--interval", "10",
                                   "--agent", f"http://{listen}", "--pyroscope", f"http://127.0.0.1:{server.server_port}"],
                                  capture_output=True, text=True, timeout=30)
            server.shutdown()
            self.assertEqual(push.returncode, 0, push.stderr)
        finally:
            agent.stop()
        (path, content_type, body), = posts
        url = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(url.query)
        self.assertEqual(url.path, "/ingest")
        self.assertEqual(query["format"], ["pprof"])
        self.assertRegex(query["name"][0], r"^kvmprof\.cpu\{host=[^}]+\}$")
        self.assertEqual(int(query["until"][0]) - int(query["from"][0]), 10)
        self.assertEqual(content_type, "application/octet-stream")
        self.assertEqual(body[:2], b"\x1f\x8b")  # gzip, as pprof files are
        pushed = os.path.join(self.tmp.name, "pushed.pb.gz")
        with open(pushed, "wb") as f:
            f.write(body)
        self.assertIn("PeriodType: cpu nanoseconds", go_pprof_raw(pushed))

    def test_log_formats_for_shippers_and_journald_priorities(self):
        """--log-format json: every line parses as JSON with ts, level and msg; with stderr being
        the stream JOURNAL_STREAM names (as systemd sets it), each line starts with <N>."""
        log_path = os.path.join(self.tmp.name, "journal.log")
        with open(log_path, "w") as log:
            st = os.fstat(log.fileno())
            env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
            proc = subprocess.Popen([AGENT, "--config", self.config, "--log-format", "json"], stderr=log, env=env)
            deadline = time.monotonic() + 10
            while "serving http" not in read(log_path) and time.monotonic() < deadline:
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=10), 0)
        lines = read(log_path).splitlines()
        self.assertGreater(len(lines), 2)
        for line in lines:
            self.assertRegex(line, r"^<[3467]>\{")
            record = json.loads(line[3:])
            self.assertEqual(set(record), {"ts", "level", "msg"})
            self.assertEqual({"<3>": "error", "<4>": "warning", "<6>": "info", "<7>": "debug"}[line[:3]], record["level"])
        self.assertTrue(any("serving http://127.0.0.1:" in json.loads(line[3:])["msg"] for line in lines))
        bad = run("--log-format", "xml")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--log-format must be text, logfmt or json", bad.stderr)

    def test_systemd_readiness_reload_watchdog_and_stop(self):
        """As systemd runs a Type=notify unit with WatchdogSec=2s: NOTIFY_SOCKET is a datagram
        socket the test reads. READY=1 comes once /metrics answers; WATCHDOG=1 every second from
        the collection loop; a reload is RELOADING=1 then READY=1 with a STATUS; SIGTERM is
        STOPPING=1."""
        path = os.path.join(self.tmp.name, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(0.2)
        messages = []

        def drain(seconds):
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                try:
                    messages.append((time.monotonic(), sock.recv(4096).decode()))
                except socket.timeout:
                    pass

        env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="2000000")
        log = open(os.path.join(self.tmp.name, "notify.log"), "w")
        proc = subprocess.Popen([AGENT, "--config", self.config], stderr=log, env=env)
        try:
            drain(3.5)
            ready = [m for _, m in messages if m.startswith("READY=1")]
            self.assertTrue(ready, messages)
            self.assertRegex(ready[0], r"STATUS=serving http://127\.0\.0\.1:\d+/metrics")
            pings = [t for t, m in messages if m == "WATCHDOG=1"]
            self.assertGreaterEqual(len(pings), 3, messages)  # every second: half of WatchdogSec
            self.assertTrue(all(0.7 < b - a < 1.5 for a, b in zip(pings, pings[1:])), pings)
            messages.clear()
            proc.send_signal(signal.SIGHUP)
            drain(1.5)
            events = [m.split("\n")[0] for _, m in messages if m != "WATCHDOG=1"]
            self.assertEqual(events[:2], ["RELOADING=1", "READY=1"], messages)
            messages.clear()
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=10), 0)
            drain(0.3)
            self.assertIn("STOPPING=1\nSTATUS=stopping", [m for _, m in messages])
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
            sock.close()

    def test_the_parca_config_scrapes_the_agents_profile_path(self):
        """deploy/parca.yaml: Parca's scrape config format (parca pkg/config), the path the agent
        serves, and none of Go's other profile types (the agent would answer them 404)."""
        with open(os.path.join(TOP, "deploy", "parca.yaml")) as f:
            text = f.read()
        self.assertRegex(text, r"process_cpu:\n\s+enabled: true\n\s+path: /debug/pprof/profile\n\s+delta: true")
        for other in ("memory", "block", "mutex", "goroutine"):
            self.assertIn(f"{other}: {{enabled: false}}", text)
        interval = int(re.search(r"scrape_interval: (\d+)s", text).group(1))
        timeout = int(re.search(r"scrape_timeout: (\d+)s", text).group(1))
        self.assertLess(interval, 60)  # within profiles.window
        self.assertGreater(timeout, interval)  # Parca refuses it otherwise


def read(path):
    with open(path) as f:
        return f.read()


def go_pprof_raw(path):
    """`go tool pprof -raw`: parses the profile the way pprof's users do; raises if it cannot."""
    env = dict(os.environ, HOME=tempfile.gettempdir(), GOCACHE=os.path.join(tempfile.gettempdir(), "kvmprof-gocache"))
    result = subprocess.run(["go", "tool", "pprof", "-raw", path], capture_output=True, text=True, timeout=60, env=env)
    if result.returncode != 0:
        raise AssertionError(f"go tool pprof -raw {path}: {result.stderr}")
    return result.stdout


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent", required=True)
    args, rest = parser.parse_known_args()
    AGENT = os.path.abspath(args.agent)
    sys.exit(0 if unittest.main(argv=[sys.argv[0], "-v"] + rest, exit=False).result.wasSuccessful() else 1)
