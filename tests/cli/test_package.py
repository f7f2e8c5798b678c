#!/usr/bin/env python3
"""deploy/package.sh: the Debian package it builds from the agent in the build directory. Its
name, contents, control fields, conffiles and maintainer scripts, lintian without errors, the
man page, a byte-identical rebuild; as root, a real install (the kvmprof user, the enabled unit,
a kept conffile on reinstall) and a purge that leaves the machine as it was found.

Usage: test_package.py --agent BUILD_DIR/agent/kvmprof-agent
Exit 77 (skipped) when every check passed but the install part could not run: not root, or
kvmprof-agent or /etc/kvmprof already on this machine.
"""
import argparse
import glob
import os
import pwd
import grp
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

AGENT = None
TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE_SH = os.path.join(TOP, "deploy", "package.sh")
INSTALL_SKIPPED = []  # why the install part did not run, for exit 77


def sh(*args, check=True, timeout=300, **kw):
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: exit {result.returncode}\n{result.stdout}{result.stderr}")
    return result


def read(path):
    with open(path) as f:
        return f.read()


def unit_directives(text):
    """Directive -> list of values, comments and section headers left out."""
    directives = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            directives.setdefault(key.strip(), []).append(value.strip())
    return directives


class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kvmprof-package-test.")
        cls.build_dir = os.path.dirname(os.path.dirname(AGENT))
        cls.out = os.path.join(cls.tmp, "out")
        result = sh("bash", PACKAGE_SH, cls.build_dir, cls.out, timeout=1800)
        print(result.stdout + result.stderr, end="", file=sys.stderr)
        debs = glob.glob(os.path.join(cls.out, "*.deb"))
        assert len(debs) == 1, f"package.sh made {debs}"
        cls.deb = debs[0]
        cls.version = sh(AGENT, "--version").stdout.split()[1]
        cls.arch = sh("dpkg", "--print-architecture").stdout.strip()
        cls.root = os.path.join(cls.tmp, "root")
        cls.control = os.path.join(cls.tmp, "control")
        sh("dpkg-deb", "-x", cls.deb, cls.root)
        sh("dpkg-deb", "-e", cls.deb, cls.control)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def field(self, name):
        return sh("dpkg-deb", "-f", self.deb, name).stdout.strip()

    def test_name_is_package_version_arch(self):
        """kvmprof-agent_<version>_amd64.deb, the version being the binary's and CMake's."""
        self.assertEqual(os.path.basename(self.deb), f"kvmprof-agent_{self.version}_{self.arch}.deb")
        self.assertRegex(os.path.basename(self.deb), r"^kvmprof-agent_\d+\.\d+\.\d+[^_]*_amd64\.deb$")
        cmake = re.search(r"project\(kvmprof VERSION (\S+?)[ )]", read(os.path.join(TOP, "CMakeLists.txt")))
        self.assertEqual(self.version, cmake.group(1))
        self.assertEqual(self.field("Package"), "kvmprof-agent")
        self.assertEqual(self.field("Version"), self.version)
        self.assertEqual(self.field("Architecture"), self.arch)

    def test_contents(self):
        listing = sh("dpkg-deb", "-c", self.deb).stdout
        print("\n" + listing, file=sys.stderr)
        entries = {}
        for line in listing.splitlines():
            mode, owner, _size, _date, _time, path = line.split(None, 5)
            entries[path] = (mode, owner)
        self.assertEqual({owner for _, owner in entries.values()}, {"root/root"})
        expected = {
            "./usr/sbin/kvmprof-agent": "-rwxr-xr-x",
            "./lib/systemd/system/kvmprof-agent.service": "-rw-r--r--",
            "./etc/kvmprof/agent.yaml": "-rw-r--r--",
            "./usr/share/doc/kvmprof-agent/copyright": "-rw-r--r--",
            "./usr/share/doc/kvmprof-agent/changelog.gz": "-rw-r--r--",
            "./usr/share/man/man8/kvmprof-agent.8.gz": "-rw-r--r--",
            "./usr/share/doc/kvmprof-agent/examples/prometheus-scrape.yml": "-rw-r--r--",
        }
        for path, mode in expected.items():
            self.assertIn(path, entries)
            self.assertEqual(entries[path][0], mode, path)
        # The unit and the config are the repository's, unchanged.
        self.assertEqual(read(os.path.join(self.root, "lib/systemd/system/kvmprof-agent.service")),
                         read(os.path.join(TOP, "deploy", "kvmprof-agent.service")))
        self.assertEqual(read(os.path.join(self.root, "etc/kvmprof/agent.yaml")),
                         read(os.path.join(TOP, "config", "agent.yaml")))

    def test_binary_is_stripped_and_runs(self):
        binary = os.path.join(self.root, "usr/sbin/kvmprof-agent")
        sections = sh("readelf", "-S", "-W", binary).stdout
        self.assertNotIn(".debug_info", sections)
        self.assertNotIn(".symtab", sections)
        self.assertLess(os.path.getsize(binary), os.path.getsize(AGENT))
        self.assertEqual(sh(binary, "--version").stdout.split()[:2], ["kvmprof-agent", self.version])

    def test_unit_runs_the_packaged_binary_as_the_packaged_user(self):
        """The unit's ExecStart is the packaged /usr/sbin/kvmprof-agent; its User=, if any, is
        the user postinst creates."""
        unit = unit_directives(read(os.path.join(self.root, "lib/systemd/system/kvmprof-agent.service")))
        exec_start = unit["ExecStart"][-1].lstrip("@-:+!")
        self.assertEqual(exec_start.split()[0], "/usr/sbin/kvmprof-agent")
        for user in unit.get("User", []):
            self.assertEqual(user, "kvmprof")
        self.assertIn("adduser --system --group", read(os.path.join(self.control, "postinst")))
        self.assertIn("kvmprof", read(os.path.join(self.control, "postinst")))

    def test_dependencies(self):
        """Depends names the package of every shared library the binary needs (dpkg-shlibdeps),
        and adduser for postinst; Recommends libvirt's daemon."""
        depends = self.field("Depends")
        names = {re.split(r"[ (]", d.strip())[0] for d in depends.split(",")}
        for name in ("libvirt0", "libc6", "libstdc++6", "libsystemd0", "adduser"):
            self.assertIn(name, names)
        binary = os.path.join(self.root, "usr/sbin/kvmprof-agent")
        for soname in re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", sh("readelf", "-d", binary).stdout):
            path = os.path.realpath(next(p for p in (f"/lib/x86_64-linux-gnu/{soname}", f"/usr/lib/x86_64-linux-gnu/{soname}",
                                                     f"/lib64/{soname}") if os.path.exists(p)))
            owner = sh("dpkg", "-S", path, check=False).stdout.split(":")[0]
            if not owner:  # /usr/lib vs /lib under merged /usr
                owner = sh("dpkg", "-S", path.replace("/usr/lib/", "/lib/", 1), check=False).stdout.split(":")[0]
            self.assertIn(owner, names, f"{soname} ({path})")
        self.assertIn("libvirt-daemon-system", self.field("Recommends"))
        self.assertRegex(self.field("Installed-Size"), r"^\d+$")
        self.assertRegex(self.field("Maintainer"), r"^[^<>]+ <[^<>@ ]+@[^<>@ ]+>$")

    def test_conffiles_and_maintainer_scripts(self):
        self.assertEqual(read(os.path.join(self.control, "conffiles")).split(), ["/etc/kvmprof/agent.yaml"])
        for script in ("postinst", "prerm", "postrm"):
            path = os.path.join(self.control, script)
            self.assertTrue(os.access(path, os.X_OK), script)
            sh("sh", "-n", path)
            self.assertIn("kvmprof-agent.service", read(path))
        # The systemd parts never need a running systemd: systemctl and deb-systemd-invoke only
        # under [ -d /run/systemd/system ] (deb-systemd-helper works without it).
        for script in ("postinst", "prerm", "postrm"):
            lines = read(os.path.join(self.control, script)).splitlines()
            for i, line in enumerate(lines):
                if re.match(r"\s*(systemctl|deb-systemd-invoke)\b", line):
                    guard = "\n".join(lines[max(0, i - 8):i])
                    self.assertIn("/run/systemd/system", guard, f"{script}: {line}")
        # md5sums covers every file but the conffile, and matches.
        md5sums = read(os.path.join(self.control, "md5sums"))
        self.assertNotIn("etc/kvmprof/agent.yaml", md5sums)
        self.assertIn("usr/sbin/kvmprof-agent", md5sums)
        sh("md5sum", "--check", "--quiet", os.path.join(self.control, "md5sums"), cwd=self.root)

    def test_lintian_reports_no_errors(self):
        if shutil.which("lintian") is None:
            self.fail("lintian is not installed (deploy/install-deps.sh installs it)")
        result = sh("lintian", "--display-info", "--tag-display-limit", "0", self.deb, check=False)
        tags = [line for line in result.stdout.splitlines() if re.match(r"^[EWIPX]: ", line)]
        print("\nlintian:\n" + "\n".join(tags or ["(no tags)"]), file=sys.stderr)
        self.assertEqual([t for t in tags if t.startswith("E: ")], [])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_man_page_renders_and_has_every_option(self):
        page = os.path.join(self.root, "usr/share/man/man8/kvmprof-agent.8.gz")
        result = sh("man", "--warnings", "-l", page, env=dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat"))
        self.assertEqual(result.stderr.strip(), "")
        text = re.sub(r".\x08", "", result.stdout)
        for option in set(re.findall(r"(?<![\w-])--[a-z][a-z.-]*", sh(AGENT, "--help").stdout)):
            self.assertIn(option, text)

    def test_rebuild_is_identical(self):
        again = os.path.join(self.tmp, "again")
        sh("bash", PACKAGE_SH, self.build_dir, again, timeout=1800)
        with open(self.deb, "rb") as a, open(os.path.join(again, os.path.basename(self.deb)), "rb") as b:
            self.assertTrue(a.read() == b.read(), "two builds of the same binary differ")

    def test_install_and_purge(self):
        """apt-get install ./kvmprof-agent_*.deb as root, as an operator would; then purge."""
        why = None
        if os.geteuid() != 0:
            why = "needs root"
        elif sh("dpkg-query", "-W", "-f=${Status}", "kvmprof-agent", check=False).stdout.startswith("install ok"):
            why = "kvmprof-agent is installed on this machine"
        elif os.path.exists("/etc/kvmprof"):
            why = "/etc/kvmprof exists on this machine"
        if why:
            INSTALL_SKIPPED.append(why)
            self.skipTest(why)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        apt = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=300"]
        user_existed = self.user_exists()
        group_existed = self.group_exists()
        wants = "/etc/systemd/system/multi-user.target.wants/kvmprof-agent.service"
        try:
            result = sh(*apt, "install", "./" + os.path.basename(self.deb), cwd=self.out, env=env)
            print("\n" + "\n".join(line for line in result.stdout.splitlines()[-6:] if "Reading database" not in line),
                  file=sys.stderr)
            self.assertTrue(sh("dpkg-query", "-W", "-f=${Status}", "kvmprof-agent").stdout.startswith("install ok installed"))
            # The system user, with no login and no home.
            user = pwd.getpwnam("kvmprof")
            self.assertLess(user.pw_uid, 1000)
            self.assertEqual(user.pw_shell, "/usr/sbin/nologin")
            self.assertEqual(grp.getgrgid(user.pw_gid).gr_name, "kvmprof")
            self.assertEqual(sh("/usr/sbin/kvmprof-agent", "--version").stdout.split()[:2], ["kvmprof-agent", self.version])
            # The user reads the config.
            checked = sh("setpriv", "--reuid=kvmprof", "--regid=kvmprof", "--init-groups",
                         "/usr/sbin/kvmprof-agent", "check-config", "/etc/kvmprof/agent.yaml", check=False)
            self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)
            # Enabled the debhelper way, with or without systemd as PID 1.
            self.assertEqual(os.readlink(wants), "/lib/systemd/system/kvmprof-agent.service")
            self.assertIn("/etc/kvmprof/agent.yaml", sh("dpkg-query", "-W", "-f=${Conffiles}", "kvmprof-agent").stdout)
            if os.path.isdir("/run/systemd/system"):
                self.assertEqual(sh("systemctl", "is-enabled", "kvmprof-agent", check=False).stdout.strip(), "enabled")
            # Reinstalling (postinst configure with the old version) keeps an operator's edit.
            with open("/etc/kvmprof/agent.yaml", "a") as f:
                f.write("# edited by test_package.py\n")
            sh("dpkg", "-i", self.deb, env=env)
            self.assertIn("# edited by test_package.py", read("/etc/kvmprof/agent.yaml"))
            self.assertTrue(os.path.islink(wants))
        finally:
            purged = sh(*apt, "purge", "kvmprof-agent", env=env, check=False)
            if not user_existed and self.user_exists():
                sh("userdel", "kvmprof", check=False)
            if not group_existed and self.group_exists():
                sh("groupdel", "kvmprof", check=False)
        self.assertEqual(purged.returncode, 0, purged.stdout + purged.stderr)
        self.assertFalse(sh("dpkg-query", "-W", "-f=${Status}", "kvmprof-agent", check=False).stdout.startswith("install"))
        for path in ("/usr/sbin/kvmprof-agent", "/etc/kvmprof", "/lib/systemd/system/kvmprof-agent.service", wants):
            self.assertFalse(os.path.lexists(path), path)
        self.assertEqual(glob.glob("/var/lib/systemd/deb-systemd-helper-enabled/**/kvmprof-agent*", recursive=True), [])
        self.assertEqual(self.user_exists(), user_existed)

    @staticmethod
    def user_exists():
        try:
            pwd.getpwnam("kvmprof")
            return True
        except KeyError:
            return False

    @staticmethod
    def group_exists():
        try:
            grp.getgrnam("kvmprof")
            return True
        except KeyError:
            return False


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent", required=True)
    args, rest = parser.parse_known_args()
    AGENT = os.path.abspath(args.agent)
    ok = unittest.main(argv=[sys.argv[0], "-v"] + rest, exit=False).result.wasSuccessful()
    if ok and INSTALL_SKIPPED:
        print(f"test_package: the install part was skipped: {INSTALL_SKIPPED[0]}", file=sys.stderr)
        sys.exit(77)
    sys.exit(0 if ok else 1)
