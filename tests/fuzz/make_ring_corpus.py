#!/usr/bin/env python3
"""Writes the seed corpus of the ring fuzzer (tests/fuzz/corpus/ring/seed-*).

Each file is one input for fuzz_ring_input() (tests/fuzz/ring_input.h): a 64-byte
RingFuzzHeader, then the bytes of the data area. Records are laid out as
kernel/events/core.c writes them; the values are made up. Run from anywhere:
    python3 tests/fuzz/make_ring_corpus.py
"""
import pathlib
import struct

PAGE = 4096
HEADER = struct.Struct("<BBHIQQQQQIHHQ")  # RingFuzzHeader
assert HEADER.size == 64

# flags bits (RingFuzzHeader::flags)
TWO_PAGES, SAMPLE_ID_ALL, HEAD_RELATIVE, KERNEL_AREA = 1, 2, 4, 8
# layout indexes into kFuzzLayouts (PERF_RECORD_G: the single-event `perf record -g` layout)
PERF_RECORD_G, WITH_IDENTIFIER, READ_REFUSED = 0, 1, 6

PERF_RECORD_LOST, PERF_RECORD_THROTTLE, PERF_RECORD_UNTHROTTLE = 2, 5, 6
PERF_RECORD_SAMPLE, PERF_RECORD_LOST_SAMPLES = 9, 13
MISC_KERNEL, MISC_GUEST_KERNEL = 1, 4
CONTEXT_KERNEL = (1 << 64) - 128
CONTEXT_USER = (1 << 64) - 512


def record(rtype, misc, *words, size=None):
    body = b"".join(struct.pack("<Q", w) for w in words)
    return struct.pack("<IHH", rtype, misc, size if size is not None else 8 + len(body)) + body


def sample(ip, chain, identifier=None, misc=MISC_KERNEL):
    """IP|TID|TIME|PERIOD|CALLCHAIN, with IDENTIFIER first when given."""
    words = ([identifier] if identifier is not None else []) + [ip, (101 << 32) | 100, 1000, 1]
    return record(PERF_RECORD_SAMPLE, misc, *words, len(chain), *chain)


def seed(records, start=0, flags=HEAD_RELATIVE | KERNEL_AREA, layout=WITH_IDENTIFIER, head=None,
         max_bytes=0, data_offset=0, data_size=0, capabilities=0b10, lock=0):
    """Places `records` from ring position `start`, wrapping, and describes them in the header."""
    size = PAGE * (2 if flags & TWO_PAGES else 1)
    area = bytearray(size)
    pos = start
    for r in records:
        for b in r:
            area[pos % size] = b
            pos += 1
    delta = pos - start
    header = HEADER.pack(flags, layout, delta if flags & HEAD_RELATIVE else 0, max_bytes,
                         head if head is not None else pos, start, data_offset, data_size,
                         capabilities, lock, 20, 0, 12345)
    return header + bytes(area).rstrip(b"\0")  # the harness reads missing bytes as zeros


def seeds():
    kernel_chain = [CONTEXT_KERNEL, 0xFFFFFFFF81000010, 0xFFFFFFFF81000020, CONTEXT_USER, 0x401000]
    guest = sample(0x7C00, [CONTEXT_KERNEL, CONTEXT_USER], misc=MISC_GUEST_KERNEL)
    assert len(guest) == 64  # the guest sample measured on the development machine
    trailer = [(101 << 32) | 100, 1000, 5]  # sample_id_all: TID, TIME, IDENTIFIER
    return {
        "wrapped-sample": seed([sample(1, kernel_chain, identifier=5)], start=5 * PAGE - 40),
        "guest-sample": seed([guest], layout=PERF_RECORD_G),
        "lost-with-trailer": seed([record(PERF_RECORD_LOST, 0, 5, 17, *trailer), sample(2, [], 5)],
                                  flags=HEAD_RELATIVE | KERNEL_AREA | SAMPLE_ID_ALL),
        "lost-samples": seed([record(PERF_RECORD_LOST_SAMPLES, 0, 3)]),
        "throttle-unthrottle": seed([record(PERF_RECORD_THROTTLE, 0, 10, 5, 6, *trailer),
                                     record(PERF_RECORD_UNTHROTTLE, 0, 20, 5, 6, *trailer)],
                                    flags=HEAD_RELATIVE | KERNEL_AREA | SAMPLE_ID_ALL),
        "zero-size": seed([record(PERF_RECORD_SAMPLE, 0, *[0] * 7, size=0)]),
        "huge-size": seed([record(PERF_RECORD_SAMPLE, 0, *[0] * 7, size=0xFFF8)]),
        "head-behind-tail": seed([sample(3, [], 5)], start=PAGE, flags=KERNEL_AREA, head=PAGE - 96),
        "head-far-ahead": seed([sample(4, [], 5)], flags=KERNEL_AREA, head=1 << 40),
        "hostile-data-area": seed([sample(5, kernel_chain, 5)], flags=HEAD_RELATIVE | TWO_PAGES,
                                  data_offset=8, data_size=6000),
        "callchain-nr-huge": seed([record(PERF_RECORD_SAMPLE, MISC_KERNEL, 5, 6, 7, 8, 9, 1 << 61, 0)]),
        "max-bytes": seed([sample(i, kernel_chain, 5) for i in range(8)], flags=HEAD_RELATIVE | KERNEL_AREA | TWO_PAGES,
                          max_bytes=100),
        "caps-pre-3.12-odd-lock": seed([], capabilities=0b1, lock=7),
        "sample-read-refused": seed([record(PERF_RECORD_SAMPLE, 0, 1, 2)], layout=READ_REFUSED),
        "header-split": seed([sample(6, kernel_chain, 5)], start=PAGE - 4),
    }


def main():
    out = pathlib.Path(__file__).resolve().parent / "corpus" / "ring"
    out.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        (out / f"seed-{name}").write_bytes(data)


if __name__ == "__main__":
    main()
