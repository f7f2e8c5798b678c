#!/usr/bin/env python3
"""Fault matrix (issue 11, section 3), hostile HTTP rows, end to end with the real agent, a real
VM and a real Prometheus scraping the agent every second: pipelined requests (answered in
order, each complete), oversized request lines and headers (431 as the README says, the
connection closed), request bodies (413), a megabyte of headers streamed, and floods of them
from several threads while scrapes keep answering and the agent's memory stays put. Slowloris
and hundreds of idle connections are test_agent.py and test_web.py test_5.

Usage: test_hostile_http.py --agent PATH/kvmprof-agent. Needs root (exit 77 = skipped otherwise).
"""
import os
import socket
import sys
import tempfile
import threading
import time
import unittest

import harness as h

AGENT = None
VM_NAME = "kvmprof-fm-http"


def read_response(f, head=False):
    """(status, headers, body) of the next answer on the file `f`, or None at EOF."""
    line = f.readline()
    if not line:
        return None
    status = int(line.split()[1])
    headers = {}
    while (line := f.readline()) not in (b"\r\n", b""):
        key, _, val = line.decode().partition(":")
        headers[key.strip().lower()] = val.strip()
    body = b""
    if not head and "content-length" in headers:
        body = f.read(int(headers["content-length"]))
    elif not head and headers.get("transfer-encoding") == "chunked":
        while (size := int(f.readline().split(b";")[0], 16)) > 0:
            body += f.read(size)
            f.readline()
        f.readline()
    return status, headers, body


def request(path="/metrics", method="GET", extra=b"", close=False):
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode() + extra +
            (b"Connection: close\r\n" if close else b"") + b"\r\n")


class HostileHttp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="kvmprof-fm-http-")
        os.chmod(cls.tmp.name, 0o755)
        h.libvirt_up()
        cls.vm = h.Vm(cls.tmp.name, VM_NAME, vcpus=1)
        cls.agent = h.Agent(AGENT, cls.tmp.name, interval="1s")
        h.wait_for("the VM", lambda: h.select(cls.agent.scrape(), "kvmprof_vm_info", uuid=cls.vm.uuid))
        cls.prom = h.Prometheus(cls.tmp.name, cls.agent.port)
        h.wait_for("Prometheus scraping", lambda: cls.prom.query('up{job="kvmprof"} == 1'), timeout=60, step=0.5)

    @classmethod
    def tearDownClass(cls):
        cls.prom.stop()
        code = cls.agent.stop()
        cls.vm.destroy()
        cls.tmp.cleanup()
        assert code == 0, f"agent exited {code} on SIGTERM"

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.agent.port), timeout=10)
        self.addCleanup(s.close)
        return s, s.makefile("rb")

    def exchange(self, data):
        """Sends `data` in one write; (status or None, whether the agent closed the connection)."""
        s, f = self.connect()
        try:
            s.sendall(data)
            answer = read_response(f)
            s.settimeout(2)  # a kept-alive connection stays open: no EOF within 2 s
            closed = f.read(1) == b""
        except ConnectionResetError:
            answer, closed = None, True
        except TimeoutError:
            closed = False
        return (answer[0] if answer else None), closed

    def assert_prometheus_kept_scraping(self, seconds):
        time.sleep(2)  # the last scrapes are in
        up = self.prom.query(f'min_over_time(up{{job="kvmprof"}}[{seconds}s])')
        duration = self.prom.query(f'max_over_time(scrape_duration_seconds{{job="kvmprof"}}[{seconds}s])')
        self.assertEqual(up[0]["value"][1], "1")
        return float(duration[0]["value"][1])

    def test_1_pipelined_requests_are_answered_in_order(self):
        s, f = self.connect()
        s.sendall(request() + request("/no-such-page") + request(method="HEAD") + request("/") + request(close=True))
        answers = [read_response(f, head=(i == 2)) for i in range(5)]
        self.assertEqual(f.read(1), b"")  # closed after the last, as it asked
        self.assertEqual([a[0] for a in answers], [200, 404, 200, 200, 200])
        for i in (0, 4):
            samples = h.parse_metrics(answers[i][2].decode())
            self.assertTrue(h.select(samples, "kvmprof_vm_info", uuid=self.vm.uuid))
        self.assertEqual(answers[2][2], b"")
        self.assertGreater(int(answers[2][1]["content-length"]), 1000)  # HEAD: GET's headers
        self.assertIn(b"<html", answers[3][2])
        # A refused method ends the connection (405 with Connection: close): what was pipelined
        # after it is not answered, and the client knows to send it again.
        s, f = self.connect()
        s.sendall(request() + request(method="POST", extra=b"Content-Length: 0\r\n") + request("/no-such-page"))
        first, refused = read_response(f), read_response(f)
        self.assertEqual((first[0], refused[0], refused[1].get("connection")), (200, 405, "close"))
        self.assertEqual(f.read(1), b"")
        # 100 in one write, read only once all are sent.
        s, f = self.connect()
        t0 = time.monotonic()
        s.sendall(request() * 99 + request(close=True))
        answers = [read_response(f) for _ in range(100)]
        took = time.monotonic() - t0
        self.assertEqual(f.read(1), b"")
        self.assertEqual({a[0] for a in answers}, {200})
        self.assertTrue(all(a[2].endswith(b"\n") and b"kvmprof_build_info" in a[2] for a in answers))
        print(f"\n  5 mixed pipelined requests answered in order, a 405 ends its connection; 100 pipelined scrapes "
              f"({sum(len(a[2]) for a in answers)} bytes) answered in {took * 1000:.0f} ms")

    def test_2_oversized_requests_are_refused_and_closed(self):
        pid = self.agent.proc.pid
        under = self.exchange(request(extra=b"X-Pad: " + b"a" * 7000 + b"\r\n"))
        over = self.exchange(request(extra=b"X-Pad: " + b"a" * 9000 + b"\r\n"))
        many = self.exchange(request(extra=b"".join(b"X-H%d: v\r\n" % i for i in range(1000))))
        line = self.exchange(request("/metrics?" + "a" * 65536))
        body = self.exchange(request(method="POST", extra=b"Content-Length: 1048576\r\n") + b"x" * 65536)
        print(f"\n  7 KB header: {under}; 9 KB header: {over}; 1000 headers: {many}; 64 KiB request line: {line}; "
              f"1 MiB body announced: {body}  (status, closed)")
        self.assertEqual(under, (200, False))
        self.assertEqual(over, (431, True))
        self.assertEqual(many, (431, True))
        self.assertIn(line[0], (400, 414, 431))
        self.assertTrue(line[1])
        self.assertIn(body[0], (405, 413))
        self.assertTrue(body[1])
        # 64 KiB of headers that never end: refused at once, not after the 10 s header deadline.
        s, f = self.connect()
        s.sendall(request()[:-2] + b"".join(b"X-More-%d: %s\r\n" % (i, b"b" * 1000) for i in range(64)))
        t0 = time.monotonic()
        try:
            streamed = read_response(f)[0]
            f.read(1)
        except ConnectionResetError:
            streamed = None  # closed with our bytes unread: the kernel resets, the 431 may be lost
        took = time.monotonic() - t0
        print(f"  64 KiB of headers that never end: answer {streamed}, connection closed after {took * 1000:.0f} ms")
        self.assertIn(streamed, (431, None))
        self.assertLess(took, 2.0)
        self.assertIsNone(self.agent.proc.poll())
        self.assertEqual(self.agent.proc.pid, pid)

    def test_3_floods_of_oversized_requests_while_prometheus_scrapes(self):
        pid = self.agent.proc.pid
        before = h.agent_footprint(pid)
        stop, counts = threading.Event(), {"sent": 0, "431": 0}
        pipelined_junk = request(extra=b"X-Pad: " + b"c" * 20000 + b"\r\n") * 4

        def flood():
            while not stop.is_set():
                try:
                    with socket.create_connection(("127.0.0.1", self.agent.port), timeout=5) as s:
                        s.sendall(request() + pipelined_junk)  # one good request, then oversized ones
                        data = b""
                        while chunk := s.recv(65536):
                            data += chunk
                        counts["sent"] += 1
                        counts["431"] += data.count(b"HTTP/1.1 431")
                except OSError:
                    counts["sent"] += 1
                time.sleep(0.005)  # hostile, but leaves this shared host some CPU

        workers = [threading.Thread(target=flood, daemon=True) for _ in range(6)]
        for w in workers:
            w.start()
        latencies, start = [], time.monotonic()
        try:
            while time.monotonic() - start < 20:
                t0 = time.monotonic()
                self.agent.scrape_text()
                latencies.append(time.monotonic() - t0)
                time.sleep(0.1)
        finally:
            stop.set()
            for w in workers:
                w.join(timeout=10)
        max_prom = self.assert_prometheus_kept_scraping(20)
        time.sleep(1)
        after = h.agent_footprint(pid)
        latencies.sort()
        print(f"\n  20 s of 6 threads sending a request plus 4 pipelined 20 KB-header ones: {counts['sent']} connections, "
              f"{counts['431']} answered 431; our scrapes median {latencies[len(latencies) // 2] * 1000:.1f} ms, "
              f"max {latencies[-1] * 1000:.1f} ms; Prometheus up 1 throughout, max scrape {max_prom * 1000:.1f} ms; "
              f"agent RSS {before['rss_kib']} -> {after['rss_kib']} KiB, fds {len(before['fds'])} -> {len(after['fds'])}")
        self.assertGreater(counts["431"], 100)
        self.assertLess(latencies[-1], 1.0)
        self.assertLess(after["rss_kib"] - before["rss_kib"], 8 * 1024)
        self.assertLessEqual(len(after["fds"]), len(before["fds"]) + 2)
        self.assertEqual(self.agent.proc.pid, pid)


def set_agent(path):
    global AGENT
    AGENT = path


if __name__ == "__main__":
    sys.exit(h.main(set_agent))
