"""What the profile suite reads back: profile.proto decoded in Python (so every value can be
checked; go tool pprof validates too), perf record callchains, /proc/kallsyms, QEMU's ELF
functions (readelf), the flame graph SVG and folded stacks, and a PNG's pixels. Used by
test_profiles.py."""
import bisect
import collections
import gzip
import http.client
import math
import re
import shutil
import struct
import subprocess
import urllib.error
import urllib.request
import zlib

import harness as h

SVG_NS = "{http://www.w3.org/2000/svg}"
PERF = shutil.which("perf")
# kvmprof_vcpu_samples_total's mode -> the profile's execution_mode (google/perf_data_converter's values).
EXECUTION_MODES = {"host_kernel": "Host Kernel", "host_user": "Host User", "guest_kernel": "Guest Kernel",
                   "guest_user": "Guest User", "hypervisor": "Hypervisor", "unknown": "Unknown"}
UNNAMED = "(unnamed)"


# --- profile.proto, decoded here so every value can be checked (go tool pprof validates too) ---

def _varint(buf, i):
    result = shift = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def _fields(buf):
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            value = bytes(buf[i:i + n])
            i += n
        elif wire == 1:
            value = struct.unpack_from("<Q", buf, i)[0]
            i += 8
        elif wire == 5:
            value = struct.unpack_from("<I", buf, i)[0]
            i += 4
        else:
            raise AssertionError(f"profile.proto: wire type {wire} at byte {i}")
        yield field, wire, value


def _ints(wire, value):
    """A repeated integer field, packed (wire type 2) or not."""
    if wire == 0:
        return [value]
    out, i = [], 0
    while i < len(value):
        x, i = _varint(value, i)
        out.append(x)
    return out


def _signed(x):
    return x - (1 << 64) if x >= 1 << 63 else x


class Frame:
    def __init__(self, address, function, filename, mapping):
        self.address, self.function, self.filename, self.mapping = address, function, filename, mapping

    def name(self):
        return self.function or UNNAMED


class Sample:
    def __init__(self, frames, count, nanos, labels, num_labels):
        self.frames = frames  # leaf first
        self.count, self.nanos = count, nanos
        self.labels = labels  # {key: str}
        self.num = num_labels  # {key: (value, unit)}

    def thread(self):
        return f"vcpu {self.num['vcpu'][0]}" if "vcpu" in self.num else self.labels.get("thread", "?")


class Pprof:
    """A gzipped profile.proto, checked the way google/pprof's CheckValid checks it."""

    def __init__(self, data):
        raw = gzip.decompress(data)
        strings, sample_types, raw_samples, mappings, locations, functions, comments = [], [], [], {}, {}, {}, []
        self.time_nanos = self.duration_nanos = self.period = 0
        period_type = None
        for field, wire, value in _fields(raw):
            if field == 1:
                sample_types.append({f: v for f, _, v in _fields(value)})
            elif field == 2:
                raw_samples.append(value)
            elif field == 3:
                m = {f: v for f, _, v in _fields(value)}
                assert m.get(1, 0) != 0 and m[1] not in mappings, f"mapping id {m.get(1)}"
                mappings[m[1]] = m
            elif field == 4:
                loc = {"lines": []}
                for f, w, v in _fields(value):
                    if f == 4:
                        loc["lines"].append({f2: v2 for f2, _, v2 in _fields(v)})
                    else:
                        loc[f] = v
                assert loc.get(1, 0) != 0 and loc[1] not in locations, f"location id {loc.get(1)}"
                locations[loc[1]] = loc
            elif field == 5:
                fn = {f: v for f, _, v in _fields(value)}
                assert fn.get(1, 0) != 0 and fn[1] not in functions, f"function id {fn.get(1)}"
                functions[fn[1]] = fn
            elif field == 6:
                strings.append(value.decode())
            elif field == 9:
                self.time_nanos = _signed(value)
            elif field == 10:
                self.duration_nanos = _signed(value)
            elif field == 11:
                period_type = {f: v for f, _, v in _fields(value)}
            elif field == 12:
                self.period = _signed(value)
            elif field == 13:
                comments.extend(_ints(wire, value))
        assert strings and strings[0] == "", "string_table[0] must be empty"
        s = lambda i: strings[i]
        self.sample_types = [(s(t.get(1, 0)), s(t.get(2, 0))) for t in sample_types]
        self.period_type = (s(period_type.get(1, 0)), s(period_type.get(2, 0))) if period_type else None
        self.comments = [s(i) for i in comments]
        self.mappings = {}
        for mid, m in mappings.items():
            self.mappings[mid] = {"start": m.get(2, 0), "limit": m.get(3, 0), "offset": m.get(4, 0),
                                  "file": s(m.get(5, 0)), "build_id": s(m.get(6, 0)), "has_functions": bool(m.get(7, 0))}
        frames = {}
        for lid, loc in locations.items():
            function = filename = ""
            if loc["lines"]:
                fn = functions[loc["lines"][0][1]]
                function, filename = s(fn.get(2, 0)), s(fn.get(4, 0))
            mapping = self.mappings[loc[2]] if loc.get(2) else None
            frames[lid] = Frame(loc.get(3, 0), function, filename, mapping)
        self.samples = []
        for raw_sample in raw_samples:
            ids, values, labels, num = [], [], {}, {}
            for f, w, v in _fields(raw_sample):
                if f == 1:
                    ids.extend(_ints(w, v))
                elif f == 2:
                    values.extend(_signed(x) for x in _ints(w, v))
                elif f == 3:
                    label = {f2: v2 for f2, _, v2 in _fields(v)}
                    key = s(label.get(1, 0))
                    assert key not in labels and key not in num, f"label {key} twice in a sample"
                    if label.get(2):
                        labels[key] = s(label[2])
                    else:
                        num[key] = (_signed(label.get(3, 0)), s(label.get(4, 0)))
            assert len(values) == len(self.sample_types), "one value per sample_type"
            self.samples.append(Sample([frames[i] for i in ids], values[0], values[1], labels, num))

    def select(self, **labels):
        """Samples whose string labels are as given; vcpu=N selects the numeric label."""
        out = []
        for sample in self.samples:
            ok = True
            for key, want in labels.items():
                if key == "vcpu":
                    ok = ok and sample.num.get("vcpu", (None,))[0] == want
                else:
                    ok = ok and sample.labels.get(key) == want
            if ok:
                out.append(sample)
        return out


def total(samples):
    return sum(s.count for s in samples)


def self_counts(samples):
    """{leaf function: samples}."""
    out = collections.Counter()
    for s in samples:
        out[s.frames[0].name() if s.frames else UNNAMED] += s.count
    return out


def cum_share(samples, function):
    n = total(samples)
    return sum(s.count for s in samples if any(f.function == function for f in s.frames)) / max(n, 1)


# --- HTTP -------------------------------------------------------------------------------

def fetch(port, target, timeout=60):
    """(status, headers, body) of GET target; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{target}", timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def raw_get(port, target, timeout=60):
    """GET on a connection of its own; a reset or a closed connection raises."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", target)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


# --- the counters a profile is checked against -------------------------------------------

def counters(samples, vm):
    """{(thread, execution_mode): samples} from kvmprof_vcpu_samples_total and
    kvmprof_vm_emulator_samples_total: what the profile of everything since the agent started
    must hold, keyed as the profile's labels say."""
    out = {}
    for l, v in h.select(samples, "kvmprof_vcpu_samples_total", uuid=vm.uuid, event="cpu-clock"):
        out[(f"vcpu {l['vcpu']}", EXECUTION_MODES[l["mode"]])] = v
    for l, v in h.select(samples, "kvmprof_vm_emulator_samples_total", uuid=vm.uuid, event="cpu-clock"):
        out[("emulator", EXECUTION_MODES[l["mode"]])] = v
    return out


def by_thread_and_mode(samples):
    out = collections.Counter()
    for s in samples:
        out[(s.thread(), s.labels.get("execution_mode"))] += s.count
    return out


# --- symbols: /proc/kallsyms and QEMU's .dynsym --------------------------------------------

class Kallsyms:
    def __init__(self):
        names = collections.defaultdict(set)
        with open("/proc/kallsyms") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1] in "tTwW":
                    names[int(parts[0], 16)].add(parts[2])
        self.addresses = sorted(names)
        self.names = names

    def at(self, address):
        """The names of the text symbol an address falls in (several aliases may start there)."""
        i = bisect.bisect_right(self.addresses, address) - 1
        return self.names[self.addresses[i]] if i >= 0 else set()


class ElfFunctions:
    """An ELF file's .dynsym functions and LOAD segments, through readelf."""

    def __init__(self, path):
        notes = h.run(["readelf", "-n", path])
        self.build_id = re.search(r"Build ID: ([0-9a-f]+)", notes).group(1)
        self.loads = []  # (file offset, vaddr, file size)
        for m in re.finditer(r"^\s+LOAD\s+0x([0-9a-f]+) 0x([0-9a-f]+) 0x[0-9a-f]+ 0x([0-9a-f]+)", h.run(["readelf", "-W", "-l", path]), re.M):
            self.loads.append((int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16)))
        self.functions = collections.defaultdict(list)  # name -> [(vaddr, size)]
        self.ranges = []
        for line in h.run(["readelf", "-W", "--dyn-syms", path]).splitlines():
            parts = line.split()
            if len(parts) >= 8 and parts[3] == "FUNC" and parts[6] != "UND":
                name = parts[7].split("@")[0]
                start, size = int(parts[1], 16), int(parts[2], 0)
                self.functions[name].append((start, size))
                self.ranges.append((start, start + max(size, 1), name))

    def vaddr(self, frame):
        """The ELF virtual address of a frame in a file mapping of this ELF."""
        file_offset = frame.address - frame.mapping["start"] + frame.mapping["offset"]
        for offset, vaddr, size in self.loads:
            if offset <= file_offset < offset + size:
                return file_offset - offset + vaddr
        return None

    def containing(self, vaddr):
        return {name for start, end, name in self.ranges if start <= vaddr < end}


# --- perf record -g on the vCPU thread ------------------------------------------------------

class PerfRecordCallchains(h.PerfRecord):
    """`perf record -g -e cpu-clock -F HZ -k mono -t TID`: the same event and frequency as the
    agent's sampling (Debian's perf 6.1 adds exclude_guest=1, which only re-tags the ~1 in 1,000
    samples KVM takes in its guest window). `-k mono` stamps samples with CLOCK_MONOTONIC,
    Python's time.monotonic(), so they can be cut to the agent's window."""

    HEADER = re.compile(r"^\s*(\d+)\s+(\d+\.\d+):\s*$")
    FRAME = re.compile(r"^\s+([0-9a-f]+)\s+(.*?)\s*$")

    def __init__(self, tid, path, hz):
        super().__init__(tid, path, ["-g", "-e", "cpu-clock", "-F", str(hz)])

    def leaves(self, start, end):
        """{leaf symbol: samples} of the thread's samples with start <= time <= end (perf script;
        the first callchain line of a sample is its IP)."""
        out = subprocess.run([PERF, "script", "-i", self.path, "-F", "tid,time,ip,sym"], capture_output=True,
                             text=True, check=True).stdout
        counts = collections.Counter()
        current = None  # (tid, time) of a sample whose leaf is still to come
        for line in out.splitlines():
            m = self.HEADER.match(line)
            if m:
                if current and current[0] == self.tid and start <= current[1] <= end:
                    counts[UNNAMED] += 1  # a sample without any callchain line
                current = (int(m.group(1)), float(m.group(2)))
                continue
            f = self.FRAME.match(line)
            if current and f:
                if current[0] == self.tid and start <= current[1] <= end:
                    sym = re.sub(r"\+0x[0-9a-f]+$", "", f.group(2))
                    counts[UNNAMED if sym in ("", "[unknown]") else sym] += 1
                current = None
        if current and current[0] == self.tid and start <= current[1] <= end:
            counts[UNNAMED] += 1
        return counts


def share_bound(k_a, n_a, k_b, n_b):
    """How far two self shares of the same function may lie apart: 4 standard errors of the
    difference of two binomial proportions (pooled p), plus 0.5 points for the windows' edges.

    Each profile is n timer samples of the same thread doing the same stationary work, so a
    function's sample count is binomial(n, p) in both (the two hrtimers have unrelated phases,
    and the guest's loop runs through the emulator's paths in microseconds, far below the 2 ms
    period, so no aliasing). The windows differ by at most a second at their ends; for work this
    steady that moves a share by far less than 0.5 points. 4 sigma: with about 10 functions
    compared, a false alarm about once in 1,500 runs."""
    p = (k_a + k_b) / (n_a + n_b)
    return 4 * math.sqrt(p * (1 - p) * (1 / n_a + 1 / n_b)) + 0.005


# --- PNG, without PIL -------------------------------------------------------------------------

def png_summary(path):
    """(width, height, file size, distinct byte values of the decompressed image data)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    i, idat, width, height = 8, b"", 0, 0
    while i + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[i:i + 8])
        body = data[i + 8:i + 8 + n]
        i += 12 + n
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
    return width, height, len(data), len(set(zlib.decompress(idat)))


# --- folded stacks and the flame graph --------------------------------------------------

FRAME_TITLE = re.compile(r"^(.*) \(([\d,]+) samples?, ([\d.]+)%\)$")


def parse_folded(text):
    lines = collections.Counter()
    for line in text.splitlines():
        m = re.fullmatch(r"(\S.*) (\d+)", line)
        assert m, f"folded line is not 'stack count': {line!r}"
        lines[m.group(1)] += int(m.group(2))
    return lines


def folded_from_pprof(profile, domain):
    """The folded stacks the profile's samples make (root first: VM, thread, frames), with
    unnamed frames, whose spelling README does not fix, as '?'."""
    out = collections.Counter()
    for s in profile.samples:
        names = []
        for frame in reversed(s.frames):
            if not frame.function:
                names.append("?")
            elif frame.mapping and frame.mapping["file"] == "[kernel.kallsyms]":
                names.append(frame.function + "_[k]")
            elif frame.mapping and frame.mapping["file"].startswith("[guest"):
                names.append(frame.function + "_[g]")
            else:
                names.append(frame.function)
        out[";".join([domain, s.thread()] + names)] += s.count
    return out


def normalize_folded(lines):
    """Unnamed frames ('[libc.so.6]', '[guest_kernel]_[g]', ...) as '?'."""
    out = collections.Counter()
    for stack, n in lines.items():
        frames = stack.split(";")
        out[";".join(frames[:2] + ["?" if re.fullmatch(r"\[[^\]]*\](_\[[kg]\])?", f) else f for f in frames[2:]])] += n
    return out


def svg_frames(root):
    """[(name, samples, percent, fill, width)] of the flame graph's frames."""
    out = []
    for g in root.iter(f"{SVG_NS}g"):
        title, rect = g.find(f"{SVG_NS}title"), g.find(f"{SVG_NS}rect")
        if title is None or rect is None:
            continue
        m = FRAME_TITLE.match(title.text or "")
        assert m, f"frame title {title.text!r}"
        out.append((m.group(1), int(m.group(2).replace(",", "")), float(m.group(3)), rect.get("fill"),
                    float(rect.get("width"))))
    return out


def svg_title(root):
    for text in root.iter(f"{SVG_NS}text"):
        if text.get("class") == "title":
            return text.text or ""
    raise AssertionError("the flame graph has no title")


def grey(fill):
    m = re.fullmatch(r"rgb\((\d+),(\d+),(\d+)\)", fill or "")
    return bool(m) and m.group(1) == m.group(2) == m.group(3)
