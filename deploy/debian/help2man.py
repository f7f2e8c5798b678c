#!/usr/bin/env python3
"""Turns `kvmprof-agent --help` (on stdin) into a man page (on stdout), so the page never drifts
from the program. The help's shape: a first line "NAME: summary.", then sections that start with
a line "Title:"; an entry is "  TERM  text" with continuation lines indented deeper; a line
that starts at column 0 is prose. "Usage:" becomes SYNOPSIS and "Examples:" stays
preformatted.

Usage: help2man.py VERSION DATE < help.txt > kvmprof-agent.8
"""
import re
import sys


DESCRIPTION = [
    "\\fBkvmprof\\-agent\\fR finds every VM through libvirt and measures, from the host, what each VM",
    "and each vCPU costs. It keeps guest work apart from the host work done for the guest (KVM",
    "exits, QEMU device emulation, I/O threads) and serves the results to Prometheus at /metrics,",
    "with per-VM profiles and a status page at /. When a measurement source is not live on a",
    "host, it says so (kvmprof_source_up 0) and never exports zeros in its place.",
]


def esc(text):
    """Escapes text for roff: backslashes, and a leading . or ' that would read as a request."""
    text = text.replace("\\", "\\e")
    return "\\&" + text if text.startswith((".", "'")) else text


def literal(text):
    """Command lines and option names: hyphens are minus signs (copy-pasteable)."""
    return esc(text).replace("-", "\\-")


def main():
    version, date = sys.argv[1], sys.argv[2]
    lines = sys.stdin.read().splitlines()
    name, _, summary = lines[0].partition(": ")
    out = [
        f'.TH {name.upper()} 8 "{date}" "kvmprof {version}" "System Administration"',
        ".nh",  # no hyphenation: names, paths and events are copied from the page
        ".ad l",
        ".SH NAME",
        f"{name} \\- {esc(summary.rstrip('.'))}",
    ]
    section = None
    prose = []  # prose lines of the current paragraph

    def flush():
        if prose:
            out.append(".PP")
            out.extend(esc(p) for p in prose)
            prose.clear()

    title_of = {"Usage": "SYNOPSIS", "Commands": "COMMANDS", "Options": "OPTIONS", "Examples": "EXAMPLES"}
    noted = False
    for line in lines[1:]:
        header = re.fullmatch(r"([A-Z][A-Za-z ]*):", line)
        if header:
            flush()
            if section in ("Usage", "Examples"):
                out.append(".fi")
            if section == "Usage":
                out += [".SH DESCRIPTION", ".PP"] + DESCRIPTION
            section = header.group(1)
            out.append(".SH " + title_of.get(section, section.upper()))
            if section in ("Usage", "Examples"):
                out.append(".nf")
            continue
        if not line.strip():
            flush()
            if section in ("Usage", "Examples"):
                continue
            if section in ("Commands", "Options"):
                section = None  # prose follows the entries
            continue
        if section in ("Usage", "Examples"):
            out.append(literal(line[2:] if line.startswith("  ") else line))
            continue
        entry = re.fullmatch(r"  (\S.*?)(?: {2,}(\S.*))?", line)
        if section in ("Commands", "Options") and entry:
            out.append(".TP")
            out.append("\\fB" + literal(entry.group(1)) + "\\fR")
            if entry.group(2):
                out.append(esc(entry.group(2)))
            continue
        if section in ("Commands", "Options") and line.startswith("   "):
            out.append(esc(line.strip()))  # continues the entry above
            continue
        if section is None and not noted:
            out.append(".SH NOTES")
            noted = True
        prose.append(line.strip())
    flush()
    if section in ("Usage", "Examples"):
        out.append(".fi")
    out += [
        ".SH FILES",
        ".TP",
        "/etc/kvmprof/agent.yaml",
        "The configuration; the built-in defaults apply when it does not exist.",
        ".TP",
        "/lib/systemd/system/kvmprof\\-agent.service",
        "The systemd unit; \\fBsystemctl reload kvmprof\\-agent\\fR re-reads the configuration.",
        ".TP",
        "/usr/share/doc/kvmprof\\-agent/",
        "README.md.gz (the full documentation) and examples for Prometheus, Parca and Pyroscope.",
        ".SH SEE ALSO",
        "\\fBsystemctl\\fR(1), \\fBperf\\fR(1), \\fBvirsh\\fR(1)",
    ]
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
