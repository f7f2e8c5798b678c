#!/usr/bin/env python3
"""TLS and basic auth the exporter toolkit's way, end to end: the real agent with a web config
whose CA, certificates (mutual TLS, a wrong CA, an expired one) and bcrypt hashes this test
makes, on IPv4 and IPv6 loopback; reloads that change the password and rotate the certificate;
hostile clients (handshakes that never finish, slowloris, idle connections) while scrapes keep
answering; and the real Prometheus scraping over TLS with basic auth."""
import base64
import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
import warnings

import harness as h

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # libxcrypt, as the agent: deprecated in Python 3.11, present in Debian 12

AGENT = None
VM_NAME = "kvmprof-it-web"
PASSWORD, NEW_PASSWORD = "scrape me", "rotated password"


def bcrypt(password):
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 10))


class Pki:
    """A CA, a server certificate for localhost, 127.0.0.1 and ::1, and client certificates:
    one from the client CA, one from another CA, one expired. openssl, as an operator would."""

    def __init__(self, d):
        self.d = d
        self.ca = self._ca("server-ca")
        self.client_ca = self._ca("client-ca")
        self.other_ca = self._ca("other-ca")
        self.server = self.issue("server", self.ca, "localhost",
                                 "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1")
        self.client = self.issue("client", self.client_ca, "prometheus")
        self.stranger = self.issue("stranger", self.other_ca, "prometheus")
        self.expired = self.issue("expired", self.client_ca, "prometheus", days=-1)

    def path(self, name):
        return os.path.join(self.d, name)

    def _ca(self, name):
        h.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
               "-keyout", self.path(f"{name}.key"), "-out", self.path(f"{name}.crt"), "-days", "2", "-subj", f"/CN={name}"])
        return name

    def issue(self, name, ca, cn, ext=None, days=2):
        """(cert, key) signed by `ca`; days=-1 is a certificate that expired a day ago."""
        key, csr, crt = self.path(f"{name}.key"), self.path(f"{name}.csr"), self.path(f"{name}.crt")
        h.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
               "-out", csr, "-subj", f"/CN={cn}"])
        extfile = self.path(f"{name}.ext")
        with open(extfile, "w") as f:
            f.write((ext or "basicConstraints=CA:FALSE") + "\n")
        h.run(["openssl", "x509", "-req", "-in", csr, "-CA", self.path(f"{ca}.crt"), "-CAkey", self.path(f"{ca}.key"),
               "-CAcreateserial", "-out", crt, "-days", str(days), "-extfile", extfile])
        return crt, key


def web_config(pki, password_hash, client_auth="VerifyClientCertIfGiven", server=None):
    cert, key = server or pki.server
    return (f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
            f"  client_auth_type: {client_auth}\n  client_ca_file: {pki.path(pki.client_ca + '.crt')}\n"
            "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
            f"basic_auth_users:\n  prometheus: '{password_hash}'\n")


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def guess_flood(port, ca, threads, addresses):
    """Threads sending wrong passwords on new TLS connections from `addresses` other loopback
    addresses; returns (stop event, list of the statuses they got)."""
    stop, statuses = threading.Event(), []

    def guess(i):
        ctx = ssl.create_default_context(cafile=ca)
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5,
                                              source_address=(f"127.0.1.{1 + i % addresses}", 0)) as raw:
                    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                        s.sendall(f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: "
                                  f"{basic('prometheus', f'guess-{i}')}\r\nConnection: close\r\n\r\n".encode())
                        statuses.append(int(s.recv(64).split()[1]))
            except (OSError, IndexError, ValueError):
                pass

    for i in range(threads):
        threading.Thread(target=guess, args=(i,), daemon=True).start()
    return stop, statuses


class Web(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="kvmprof-web-")
        os.chmod(cls.tmp.name, 0o755)
        cls.pki = Pki(cls.tmp.name)
        cls.web = os.path.join(cls.tmp.name, "web-config.yml")
        with open(cls.web, "w") as f:
            f.write(web_config(cls.pki, bcrypt(PASSWORD)))
        h.libvirt_up()
        cls.vm = h.Vm(cls.tmp.name, VM_NAME, vcpus=1)
        cls.agent = h.Agent(AGENT, cls.tmp.name, listen="[::]:0", args=["--web.config.file", cls.web])
        cls.port = cls.agent.port
        h.wait_for("the VM over TLS", lambda: VM_NAME in cls.get("/metrics", auth=basic("prometheus", PASSWORD))[2])

    @classmethod
    def tearDownClass(cls):
        code = cls.agent.stop()
        cls.vm.destroy()
        cls.tmp.cleanup()
        assert code == 0, f"agent exited {code} on SIGTERM"

    @classmethod
    def context(cls, client=None, ca=None):
        ctx = ssl.create_default_context(cafile=ca or cls.pki.path(cls.pki.ca + ".crt"))
        if client:
            ctx.load_cert_chain(*client)
        return ctx

    @classmethod
    def get(cls, path, auth=None, client=None, host="127.0.0.1", ca=None):
        """(status, headers, body) of an HTTPS GET."""
        req = urllib.request.Request(f"https://{host}:{cls.port}{path}", headers={"Authorization": auth} if auth else {})
        try:
            with urllib.request.urlopen(req, timeout=10, context=cls.context(client, ca)) as r:
                return r.status, r.headers, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode()

    def reload(self, text):
        """Writes the web config and SIGHUPs; returns the agent's log after it answered."""
        before = self.agent.log_text().count("reload (SIGHUP)")
        with open(self.web, "w") as f:
            f.write(text)
        self.agent.proc.send_signal(signal.SIGHUP)
        return h.wait_for("the reload", lambda: self.agent.log_text().count("reload (SIGHUP)") > before and
                          self.agent.log_text(), timeout=10)

    def test_1_every_endpoint_needs_the_password(self):
        good = basic("prometheus", PASSWORD)
        status, headers, body = self.get("/metrics", auth=good)
        self.assertEqual(status, 200)
        self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
        self.assertIn(f'domain="{VM_NAME}"', body)
        for path in ["/metrics", "/", "/debug/pprof/profile?seconds=1", "/debug/pprof/flamegraph", "/no-such-page"]:
            for auth in [None, basic("prometheus", "wrong"), basic("nobody", PASSWORD), "Basic !!!!", "Bearer abc",
                         "Basic " + base64.b64encode(b"no-colon").decode()]:
                status, headers, body = self.get(path, auth=auth)
                self.assertEqual(status, 401, f"{path} with {auth!r}")
                self.assertEqual(headers["WWW-Authenticate"], 'Basic realm="kvmprof-agent", charset="UTF-8"')
                self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
                self.assertNotIn(VM_NAME, body)
        self.assertEqual(self.get("/", auth=good)[0], 200)
        self.assertEqual(self.get("/no-such-page", auth=good)[0], 404)

    def test_2_client_certificates(self):
        good = basic("prometheus", PASSWORD)
        self.assertEqual(self.get("/metrics", auth=good, client=self.pki.client)[0], 200)
        self.assertEqual(self.get("/metrics", auth=good)[0], 200)  # VerifyClientCertIfGiven: none is fine
        for name, client in [("a wrong CA", self.pki.stranger), ("an expired certificate", self.pki.expired)]:
            with self.assertRaises((ssl.SSLError, ConnectionResetError, urllib.error.URLError), msg=name):
                self.get("/metrics", auth=good, client=client)
        with self.assertRaises(urllib.error.URLError):  # the server's certificate is checked too
            self.get("/metrics", auth=good, ca=self.pki.path(self.pki.other_ca + ".crt"))
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:  # plain HTTP gets no answer
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertNotIn(b"kvmprof", s.recv(65536))

    def test_3_ipv6_loopback(self):
        status, _, body = self.get("/metrics", auth=basic("prometheus", PASSWORD), host="[::1]")
        self.assertEqual(status, 200)
        self.assertIn(f'domain="{VM_NAME}"', body)

    def test_4_reload_changes_the_password_rotates_the_certificate_and_keeps_the_old_on_errors(self):
        old_cert = ssl.get_server_certificate(("127.0.0.1", self.port))
        rotated = self.pki.issue("server2", self.pki.ca, "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1")
        self.reload(web_config(self.pki, bcrypt(NEW_PASSWORD), server=rotated))
        self.assertEqual(self.get("/metrics", auth=basic("prometheus", PASSWORD))[0], 401)
        self.assertEqual(self.get("/metrics", auth=basic("prometheus", NEW_PASSWORD))[0], 200)
        new_cert = ssl.get_server_certificate(("127.0.0.1", self.port))
        self.assertNotEqual(hashlib.sha256(old_cert.encode()).hexdigest(), hashlib.sha256(new_cert.encode()).hexdigest())
        with open(rotated[0]) as f:
            self.assertEqual(ssl.PEM_cert_to_DER_cert(new_cert), ssl.PEM_cert_to_DER_cert(f.read()))

        log = self.reload("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: x.key\nbasic_auth_users: {}\n")
        self.assertIn(f"{self.web}:2:14: cannot read cert_file /nonexistent.crt: No such file or directory", log)
        self.assertEqual(self.get("/metrics", auth=basic("prometheus", NEW_PASSWORD))[0], 200)  # the old one stays
        status, _, body = self.get("/metrics", auth=basic("prometheus", NEW_PASSWORD))
        self.assertIn("kvmprof_config_last_reload_successful 0", body)
        log = self.reload("basic_auth_users: {}\n")
        self.assertIn("turning TLS off needs a restart", log)
        cert, key = rotated
        log = self.reload(f"tls_server_config: {{cert_file: {cert}, key_file: {key}}}\n")  # users gone: cut short?
        self.assertIn("turning basic auth off needs a restart", log)
        self.assertEqual(self.get("/metrics")[0], 401)

        self.reload(web_config(self.pki, bcrypt(NEW_PASSWORD), "RequireAndVerifyClientCert", server=rotated))
        with self.assertRaises((ssl.SSLError, ConnectionResetError, urllib.error.URLError)):
            self.get("/metrics", auth=basic("prometheus", NEW_PASSWORD))  # mutual TLS: no certificate, no entry
        self.assertEqual(self.get("/metrics", auth=basic("prometheus", NEW_PASSWORD), client=self.pki.client)[0], 200)
        self.reload(web_config(self.pki, bcrypt(PASSWORD)))  # as the other tests expect it
        self.assertEqual(self.get("/metrics", auth=basic("prometheus", PASSWORD))[0], 200)

    def test_5_scrapes_answer_while_hostile_clients_hold_connections(self):
        """500 connections from 10 other loopback addresses (50 each: under the per-client cap,
        so all are held at once): TLS handshakes that never start or never finish, slowloris
        requests after a handshake; and 8 threads guessing passwords (a bcrypt each). A
        scraper on one keep-alive connection (as Prometheus)
        keeps answering in under 100 ms, and so does one that connects anew each time. The
        deadlines close the stalled ones after request_timeout (10 s)."""
        held, stop, opened = [], threading.Event(), threading.Event()
        hello = self.partial_client_hello()

        def hostile():
            for i in range(500):
                try:
                    s = socket.create_connection(("127.0.0.1", self.port), timeout=5,
                                                 source_address=(f"127.0.0.{2 + i % 10}", 0))
                    if i % 3 == 1:
                        s.sendall(hello)  # a handshake that never finishes
                    elif i % 3 == 2:
                        s = self.context().wrap_socket(s, server_hostname="localhost")
                        s.sendall(b"GET /metrics HTTP/1.1\r\n")  # slowloris after the handshake
                    held.append(s)
                except OSError:
                    pass
            opened.set()
            while not stop.wait(0.5):
                for s in held[2::3]:
                    try:
                        s.sendall(b"X")
                    except OSError:
                        pass

        guesses = []

        def guess():  # each wrong password costs the agent a bcrypt, on its hasher thread
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    guesses.append(self.get("/metrics", auth=basic("prometheus", f"guess-{threading.get_ident()}-{n}"))[0])
                except OSError:
                    pass

        worker = threading.Thread(target=hostile, daemon=True)
        guessers = [threading.Thread(target=guess, daemon=True) for _ in range(8)]
        scraper = self.KeepAlive(self)
        try:
            worker.start()
            for g in guessers:
                g.start()
            kept, fresh = [], []
            end = time.monotonic() + 20
            while time.monotonic() < end or not opened.is_set():
                kept.append(scraper.scrape())
                t0 = time.monotonic()
                self.assertEqual(self.get("/metrics", auth=basic("prometheus", PASSWORD))[0], 200)
                fresh.append(time.monotonic() - t0)
                time.sleep(0.1)
            kept.sort()
            fresh.sort()
            print(f"\n  {len(held)} hostile connections held ({len(held) // 3} unfinished handshakes), "
                  f"{len(guesses)} wrong passwords from 8 threads ({guesses.count(401)} got 401, {guesses.count(503)} 503); "
                  f"keep-alive scrapes: median {kept[len(kept) // 2] * 1000:.1f} ms, 95% {kept[len(kept) * 95 // 100] * 1000:.1f} ms, "
                  f"max {kept[-1] * 1000:.1f} ms; "
                  f"new TLS connection each: median {fresh[len(fresh) // 2] * 1000:.1f} ms, max {fresh[-1] * 1000:.1f} ms "
                  f"({len(kept)} each)")
            self.assertLess(kept[len(kept) * 95 // 100], 0.1)  # 95% of keep-alive scrapes under 100 ms,
            self.assertLess(kept[-1], 0.5)                       # none stalled
            self.assertLess(fresh[len(fresh) // 2], 0.1)
            self.assertGreater(guesses.count(401), 20)
            self.assertEqual(set(guesses) - {401, 503}, set())
        finally:
            stop.set()
            scraper.close()
            for s in held:
                s.close()

    def partial_client_hello(self):
        """The first 40 bytes of a real ClientHello: the server waits for the rest."""
        out = ssl.MemoryBIO()
        client = self.context().wrap_bio(ssl.MemoryBIO(), out, server_hostname="localhost")
        with self.assertRaises(ssl.SSLWantReadError):
            client.do_handshake()
        return out.read()[:40]

    class KeepAlive:
        """One TLS connection reused for every scrape, as Prometheus does."""

        def __init__(self, test):
            import http.client
            self.conn = http.client.HTTPSConnection("127.0.0.1", test.port, timeout=5, context=test.context())
            self.auth = basic("prometheus", PASSWORD)

        def scrape(self):
            t0 = time.monotonic()
            self.conn.request("GET", "/metrics", headers={"Authorization": self.auth})
            r = self.conn.getresponse()
            r.read()
            assert r.status == 200, r.status
            return time.monotonic() - t0

        def close(self):
            self.conn.close()

    def test_5b_a_flood_of_guesses_from_many_addresses_leaves_room_for_a_new_password(self):
        """96 threads guess from 8 addresses (more than the 64 checks that may wait): each
        address gets 2 checks at a time and 503 beyond, so the scraper's first scrape after a
        password change, which needs a bcrypt too, still gets its turn."""
        stop, statuses = guess_flood(self.port, self.pki.path(self.pki.ca + ".crt"), 96, 8)
        try:
            time.sleep(3)
            self.reload(web_config(self.pki, bcrypt(NEW_PASSWORD)))
            t0, attempts = time.monotonic(), []
            h.wait_for("the new password accepted during the flood",
                       lambda: attempts.append(self.get("/metrics", auth=basic("prometheus", NEW_PASSWORD))[0]) or
                       attempts[-1] == 200, timeout=20, step=0.2)
            took = time.monotonic() - t0
            print(f"\n  96 guessing threads from 8 addresses: {statuses.count(401)} got 401, {statuses.count(503)} 503; "
                  f"the new password was accepted after {took * 1000:.0f} ms (answers {attempts})")
            self.assertGreater(statuses.count(503), 0)
            self.assertEqual(set(statuses) - {401, 503}, set())
        finally:
            stop.set()
            self.reload(web_config(self.pki, bcrypt(PASSWORD)))

    def test_6_prometheus_scrapes_over_tls_with_basic_auth(self):
        job = (f"    scheme: https\n    tls_config:\n      ca_file: {self.pki.path(self.pki.ca + '.crt')}\n"
               f"      cert_file: {self.pki.client[0]}\n      key_file: {self.pki.client[1]}\n"
               f"    basic_auth:\n      username: prometheus\n      password: '{PASSWORD}'\n")
        prom = h.Prometheus(self.tmp.name, self.port, job_extra=job)
        try:
            found = h.wait_for("Prometheus to scrape the VM over TLS",
                               lambda: prom.query(f'kvmprof_vm_info{{domain="{VM_NAME}"}}'), timeout=60, step=0.5)
            self.assertEqual(found[0]["metric"]["uuid"], self.vm.uuid)
            self.assertEqual(prom.query('up{job="kvmprof"}')[0]["value"][1], "1")
        finally:
            prom.stop()

    def test_7_promtool_and_the_agent_accept_the_shipped_example(self):
        d = os.path.join(self.tmp.name, "example")
        os.makedirs(os.path.join(d, "tls"))
        shutil.copy(os.path.join(h.DEPLOY, "web-config.yml"), d)
        shutil.copy(self.pki.server[0], os.path.join(d, "tls", "kvmprof.crt"))
        shutil.copy(self.pki.server[1], os.path.join(d, "tls", "kvmprof.key"))
        shutil.copy(self.pki.path(self.pki.client_ca + ".crt"), os.path.join(d, "tls", "client-ca.crt"))
        example = os.path.join(d, "web-config.yml")
        promtool = subprocess.run(["promtool", "check", "web-config", example], capture_output=True, text=True)
        self.assertEqual(promtool.returncode, 0, promtool.stdout + promtool.stderr)
        config = os.path.join(d, "agent.yaml")
        with open(config, "w") as f:
            f.write("version: 1\nweb_config: web-config.yml\n")
        check = subprocess.run([AGENT, "check-config", config], capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stderr)
        self.assertEqual(check.stdout.splitlines()[0], f"{config}: ok, {example}: ok")  # then the series estimate


class Shutdown(unittest.TestCase):
    def test_sigterm_stops_promptly_while_passwords_are_guessed(self):
        """Queued password checks are dropped at exit: only the one under way is waited for."""
        tmp = tempfile.TemporaryDirectory(prefix="kvmprof-web-stop-")
        try:
            pki = Pki(tmp.name)
            web = os.path.join(tmp.name, "web-config.yml")
            with open(web, "w") as f:
                f.write(web_config(pki, crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 12))))
            agent = h.Agent(AGENT, tmp.name, args=["--web.config.file", web])
            stop, statuses = guess_flood(agent.port, pki.path(pki.ca + ".crt"), 64, 32)
            h.wait_for("checks queued", lambda: len(statuses) > 20, timeout=30)
            t0 = time.monotonic()
            code = agent.stop()
            took = time.monotonic() - t0
            stop.set()
            print(f"\n  SIGTERM with password checks (cost 12) queued: stopped in {took * 1000:.0f} ms")
            self.assertEqual(code, 0)
            self.assertLess(took, 3)
        finally:
            tmp.cleanup()


def set_agent(path):
    global AGENT
    AGENT = path


if __name__ == "__main__":
    raise SystemExit(h.main(set_agent))
