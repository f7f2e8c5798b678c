#!/usr/bin/env python3
"""The hardened systemd unit, deploy/kvmprof-agent.service, as `systemd-analyze security` rates
it offline: an overall exposure of at most 3.0, the agent still a Type=notify service run by the
kvmprof user, its capabilities the same in AmbientCapabilities= and CapabilityBoundingSet=, and
every exposure the analyzer still reports explained by a comment in the unit.

Usage: test_unit_security.py [--agent PATH]   (the agent is not needed; the option is accepted
so that every CLI test takes the same arguments)
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import unittest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT = os.path.join(TOP, "deploy", "kvmprof-agent.service")
MAX_EXPOSURE = 3.0


def read_unit():
    with open(UNIT) as f:
        return f.read()


def directives(text):
    """[Service] and the other sections' KEY=VALUE lines as {key: [values in order]}; comments and
    section headers skipped, continuation lines joined."""
    out = {}
    logical = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith(("#", ";")) or stripped.startswith("[")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    for line in logical:
        if "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def comments(text):
    return "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))


def capabilities(values):
    caps = set()
    for value in values:
        if value == "":  # an empty assignment resets the list
            caps.clear()
            continue
        caps |= set(value.split())
    return caps


def analyze(*args):
    return subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", *args, UNIT],
                          capture_output=True, text=True, timeout=60)


class UnitSecurity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.text = read_unit()
        cls.unit = directives(cls.text)
        cls.comments = comments(cls.text)

    def need_analyzer(self):
        if shutil.which("systemd-analyze") is None:
            self.skipTest("systemd-analyze is not installed (Debian: systemd)")

    def last(self, key):
        self.assertIn(key, self.unit, f"{key}= is not set")
        return self.unit[key][-1]

    def test_overall_exposure_is_at_most_3_0(self):
        self.need_analyzer()
        # --threshold is in tenths: exit status non-zero when the exposure is over 3.0.
        result = analyze(f"--threshold={int(MAX_EXPOSURE * 10)}")
        match = re.search(r"Overall exposure level for kvmprof-agent\.service: (\d+(?:\.\d+)?) (\S+)",
                          result.stdout)
        self.assertIsNotNone(match, result.stdout + result.stderr)
        score = float(match.group(1))
        print(f"\nsystemd-analyze security: {score} {match.group(2)}", file=sys.stderr)
        self.assertLessEqual(score, MAX_EXPOSURE, result.stdout)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_the_service_keeps_its_behaviour(self):
        self.assertEqual(self.last("Type"), "notify")
        self.assertEqual(self.last("NotifyAccess"), "main")
        self.assertEqual(self.last("WatchdogSec"), "30s")
        self.assertEqual(self.last("ExecStart"), "/usr/sbin/kvmprof-agent")
        self.assertEqual(self.last("ExecReload"), "/bin/kill -HUP $MAINPID")
        self.assertEqual(self.last("Restart"), "on-failure")
        self.assertEqual(self.last("RestartPreventExitStatus"), "2")
        self.assertIn("LimitNOFILE", self.unit)

    def test_runs_as_kvmprof_without_new_privileges(self):
        self.assertEqual(self.last("User"), "kvmprof")
        self.assertEqual(self.last("Group"), "kvmprof")
        self.assertNotIn("DynamicUser", self.unit)  # the package creates a real system user
        self.assertEqual(self.last("NoNewPrivileges"), "yes")
        self.assertEqual(self.last("ProtectSystem"), "strict")

    def test_ambient_capabilities_equal_the_bounding_set_and_each_is_explained(self):
        ambient = capabilities(self.unit.get("AmbientCapabilities", []))
        bounding = capabilities(self.unit.get("CapabilityBoundingSet", []))
        self.assertTrue(ambient, "no AmbientCapabilities=: the agent would run with no capability")
        self.assertEqual(ambient, bounding)
        self.assertIn("CAP_PERFMON", ambient)
        for cap in ("CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_MODULE", "CAP_SETUID", "CAP_DAC_OVERRIDE"):
            self.assertNotIn(cap, ambient)
        for cap in sorted(ambient):
            self.assertRegex(self.comments, r"#\s*" + re.escape(cap) + r"\b",
                             f"{cap} has no comment line saying why the agent needs it")

    def test_every_exposure_left_is_commented(self):
        """Each item the analyzer still marks as exposed names something (a directive, a granted
        capability, a socket family, a system call group) that a comment in the unit explains."""
        self.need_analyzer()
        result = analyze("--json=short")
        self.assertEqual(result.returncode, 0, result.stderr)
        items = json.loads(result.stdout)
        granted = capabilities(self.unit.get("CapabilityBoundingSet", []))
        families = set(" ".join(self.unit.get("RestrictAddressFamilies", [])).split())
        unexplained = []
        for item in items:
            if item.get("set") or item.get("exposure") in (None, "0.0"):
                continue
            name = item["name"]
            key, _, value = name.partition("=")
            value = value.lstrip("~")
            if value.startswith("@"):
                words = [value]
            elif value.startswith("CAP_"):
                pattern = re.compile(value.replace("*", ".*") + "$")
                words = sorted(c for c in granted if pattern.match(c)) or [key]
            elif value.startswith("AF_"):
                pattern = re.compile(value + "$")
                words = sorted(f for f in families if pattern.match(f)) or [key]
            else:
                words = [key.split("/")[0] if "/" in key else key]
            for word in words:
                if not re.search(r"(?<![\w@])" + re.escape(word) + r"(?![\w])", self.comments):
                    unexplained.append(f"{name} ({item['exposure']}): no comment mentions {word}")
        self.assertEqual(unexplained, [])

    def test_relaxed_settings_say_relaxed(self):
        """A protection set to its weak value on purpose is introduced by a "Relaxed:" comment
        naming it."""
        relaxed = {"ProtectKernelTunables": "no", "ProtectKernelLogs": "no", "PrivateUsers": "no",
                   "PrivateNetwork": "no", "ProcSubset": "all"}
        relaxed_comments = re.findall(r"#\s*Relaxed:(.*(?:\n#(?!\s*Relaxed:).*)*)", self.text)
        text = "\n".join(relaxed_comments)
        for key, weak in relaxed.items():
            if self.unit.get(key, [None])[-1] == weak:
                self.assertIn(key, text, f"{key}={weak} has no 'Relaxed:' comment")
        self.assertNotEqual(self.unit.get("ProtectProc", ["default"])[-1], "default")

    def test_verify_accepts_the_unit(self):
        """`systemd-analyze verify` on a copy whose ExecStart points at an existing file (the real
        path exists only once the package is installed)."""
        self.need_analyzer()
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            copy = os.path.join(tmp, "kvmprof-agent.service")
            with open(copy, "w") as f:
                f.write(self.text.replace("/usr/sbin/kvmprof-agent", "/bin/true"))
            result = subprocess.run(["systemd-analyze", "verify", copy], capture_output=True, text=True,
                                    timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent", help="accepted and ignored")
    args, rest = parser.parse_known_args()
    sys.exit(0 if unittest.main(argv=[sys.argv[0], "-v"] + rest, exit=False).result.wasSuccessful() else 1)
