"""Mutation fuzz of the ELF loader and everything after it (issue 9).

Takes the bundled examples' ELF files, mutates them (ELF header fields,
program header fields, section headers, sizes, random bytes) and runs
each mutant through ``pynova.run()`` with a time limit. Reports how many
runs took longer than the limit plus one second (goal: none), the peak
memory of the running processes (goal: under 300 MB) and every exception
that escaped ``pynova.run()`` (goal: none). Deterministic for a seed.

    .venv/bin/python benchmarks/fuzz_elf.py [--count 3000] [--seed 1] [--jobs 2]

Exit status 0 when all three goals hold, 1 otherwise.
"""

from __future__ import annotations

import argparse
import collections
import random
import resource
import struct
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import NamedTuple

EH_FIELDS = {  # name: (offset, struct format) in Elf32_Ehdr
    "type": (16, "<H"), "machine": (18, "<H"), "version": (20, "<I"), "entry": (24, "<I"),
    "phoff": (28, "<I"), "shoff": (32, "<I"), "ehsize": (40, "<H"), "phentsize": (42, "<H"),
    "phnum": (44, "<H"), "shentsize": (46, "<H"), "shnum": (48, "<H"), "shstrndx": (50, "<H"),
}
PH_FIELDS = ("type", "offset", "vaddr", "paddr", "filesz", "memsz", "flags", "align")
SH_FIELDS = ("name", "type", "flags", "addr", "offset", "size", "link", "info", "align",
             "entsize")
INTERESTING = (0, 1, 2, 3, 0x7F, 0x80, 0xFF, 0x100, 0xFFF, 0x1000, 0x1001, 0x2000, 0xFFFF,
               0x10000, 0x7FFFFFFF, 0x80000000, 0xBFFFE000, 0xBFFFF000, 0xBFFFFFFF,
               0xC0000000, 0xC0103000, 0xFFFFF000, 0xFFFFFFFF)
EXAMPLES = ("hello", "exit42", "pagefault", "bss", "threads", "heap_grow", "sysmisc",
            "malloc_threads", "textwrite", "divzero", "badprint", "nbrk_probe")


class Outcome(NamedTuple):
    index: int
    what: str
    status: int | None
    seconds: float
    error: str = ""
    grew_kib: int = 0    # how much this run raised the process's peak RSS


# ------------------------------------------------------------ mutations
def value(rng: random.Random, old: int, size: int, image_len: int) -> int:
    """A new value for a field of ``size`` bytes that held ``old``."""
    mask = (1 << (8 * size)) - 1
    choice = rng.randrange(5)
    if choice == 0:
        return rng.choice(INTERESTING) & mask
    if choice == 1:
        return (old + rng.choice((-1, 1)) * rng.choice((1, 4, 0x10, 0x1000, 0x10000))) & mask
    if choice == 2:
        return rng.choice((image_len, image_len - 1, image_len + 1, image_len // 2)) & mask
    if choice == 3:
        return old ^ (1 << rng.randrange(8 * size))
    return rng.getrandbits(8 * size)


def mutate_header(image: bytearray, rng: random.Random) -> str:
    if rng.random() < 0.1:
        at = rng.randrange(4, 16)  # e_ident: class, data, version, OS/ABI ...
        image[at] = rng.choice((0, 1, 2, 3, 0xFF, rng.randrange(256)))
        return f"e_ident[{at}]={image[at]}"
    name = rng.choice(sorted(EH_FIELDS))
    at, fmt = EH_FIELDS[name]
    old = struct.unpack_from(fmt, image, at)[0]
    new = value(rng, old, struct.calcsize(fmt), len(image))
    struct.pack_into(fmt, image, at, new)
    return f"e_{name}={new:#x}"


def program_header_at(image: bytearray, rng: random.Random) -> int | None:
    phoff, = struct.unpack_from("<I", image, 28)
    phnum, = struct.unpack_from("<H", image, 44)
    if not phnum or phoff + 32 * phnum > len(image):
        return None
    return phoff + 32 * rng.randrange(phnum)


def mutate_program_header(image: bytearray, rng: random.Random) -> str:
    at = program_header_at(image, rng)
    if at is None:
        return mutate_header(image, rng)
    field = rng.randrange(8)
    old = struct.unpack_from("<I", image, at + 4 * field)[0]
    new = value(rng, old, 4, len(image))
    if PH_FIELDS[field] in ("vaddr", "offset") and rng.random() < 0.5:
        new = (new & ~0xFFF) | (old & 0xFFF)  # keep the page offset: passes the alignment check
    struct.pack_into("<I", image, at + 4 * field, new)
    return f"p_{PH_FIELDS[field]}={new:#x}"


def mutate_section_header(image: bytearray, rng: random.Random) -> str:
    shoff, = struct.unpack_from("<I", image, 32)
    shnum, = struct.unpack_from("<H", image, 48)
    if not shnum or shoff + 40 * shnum > len(image):
        return mutate_header(image, rng)
    at = shoff + 40 * rng.randrange(shnum)
    field = rng.randrange(10)
    old = struct.unpack_from("<I", image, at + 4 * field)[0]
    new = value(rng, old, 4, len(image))
    struct.pack_into("<I", image, at + 4 * field, new)
    return f"sh_{SH_FIELDS[field]}={new:#x}"


def mutate_size(image: bytearray, rng: random.Random) -> str:
    choice = rng.randrange(4)
    if choice == 0:
        cut = rng.randrange(len(image))
        del image[cut:]
        return f"truncate to {cut}"
    if choice == 1:
        extra = rng.choice((1, 100, 4096, 1 << 16, 1 << 20))
        image += bytes(extra) if rng.random() < 0.5 else rng.randbytes(extra)
        return f"extend by {extra}"
    if choice == 2:  # many program headers: repeat the table at the end
        phoff, = struct.unpack_from("<I", image, 28)
        phnum, = struct.unpack_from("<H", image, 44)
        table = bytes(image[phoff:phoff + 32 * phnum])
        # at most 65535 in all (e_phnum's range): up to 2 MiB of headers
        copies = min(rng.choice((2, 50, 500, 2000, 3000)), 0xFFFF // max(phnum, 1))
        struct.pack_into("<IH", image, 28, len(image), 0)
        struct.pack_into("<H", image, 44, min(0xFFFF, phnum * copies))
        image += table * copies
        return f"program headers x{copies}"
    at = program_header_at(image, rng)
    if at is None:
        return mutate_header(image, rng)
    # a segment's sizes, both at once: big bss, big file part, equal
    size = rng.choice((0x1000, 0x100000, 0x800000, 0x10000000, 0xBFFF0000, rng.getrandbits(32)))
    filesz = rng.choice((struct.unpack_from("<I", image, at + 16)[0], size, 0))
    struct.pack_into("<II", image, at + 16, min(filesz, size), size)
    return f"segment sizes {min(filesz, size):#x}/{size:#x}"


def mutate_bytes(image: bytearray, rng: random.Random) -> str:
    if not image:
        image += rng.randbytes(rng.choice((1, 4, 52)))
        return "bytes from nothing"
    count = rng.choice((1, 2, 8, 64))
    for _ in range(count):
        at = rng.randrange(len(image))
        flip = image[at] ^ (1 << rng.randrange(8))
        image[at] = rng.randrange(256) if rng.random() < 0.5 else flip
    return f"{count} random bytes"


MUTATIONS: tuple[Callable[[bytearray, random.Random], str], ...] = (
    mutate_header, mutate_program_header, mutate_program_header, mutate_section_header,
    mutate_size, mutate_bytes)


def mutant(images: dict[str, bytes], seed: int, index: int) -> tuple[bytes, str]:
    """The index-th mutant for a seed: an example with 1 to 3 mutations."""
    rng = random.Random(seed * 1_000_003 + index)
    name = rng.choice(sorted(images))
    image = bytearray(images[name])
    steps = [_apply(rng.choice(MUTATIONS), image, rng) for _ in range(rng.choice((1, 1, 2, 3)))]
    return bytes(image), f"{name}: " + ", ".join(steps)


def _apply(mutation: Callable[[bytearray, random.Random], str], image: bytearray,
           rng: random.Random) -> str:
    """A mutation, or random bytes where the image is too short for it."""
    try:
        return mutation(image, rng)
    except struct.error:
        return mutate_bytes(image, rng)


# ---------------------------------------------------------------- runs
def run_one(image: bytes, index: int, what: str, timeout: float) -> Outcome:
    import pynova
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    try:
        status: int | None = pynova.run(image, timeout=timeout).status
        error = ""
    except BaseException as err:  # noqa: BLE001 - what the fuzz looks for
        status, error = None, "".join(traceback.format_exception_only(type(err), err)).strip()
    seconds = time.monotonic() - start
    return Outcome(index, what, status, seconds, error,
                   resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)


def run_share(images: dict[str, bytes], seed: int, indices: list[int],
              timeout: float) -> tuple[list[Outcome], int]:
    """Run some mutants in this process; their outcomes and the peak RSS (KiB)."""
    outcomes = [run_one(*mutant_with_index(images, seed, i), timeout) for i in indices]
    return outcomes, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def mutant_with_index(images: dict[str, bytes], seed: int, i: int) -> tuple[bytes, int, str]:
    image, what = mutant(images, seed, i)
    return image, i, what


def example_images(names: tuple[str, ...] = EXAMPLES) -> dict[str, bytes]:
    from pynova.toolchain import example_path
    return {name: example_path(name).read_bytes() for name in names}


def report(outcomes: list[Outcome], peak_kib: int, timeout: float, seconds: float) -> bool:
    late = [o for o in outcomes if o.seconds > timeout + 1.0]
    escaped = [o for o in outcomes if o.status is None]
    statuses = collections.Counter(o.status for o in outcomes if o.status is not None)
    print(f"{len(outcomes)} mutants in {seconds:.0f} s, time limit {timeout} s")
    print("exit statuses: " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
    slowest = max(outcomes, key=lambda o: o.seconds)
    print(f"slowest run: {slowest.seconds:.2f} s (#{slowest.index} {slowest.what})")
    print(f"ran past the limit + 1 s: {len(late)} (goal 0)")
    for o in late[:10]:
        print(f"  #{o.index} {o.seconds:.2f} s: {o.what}")
    print(f"peak memory of a fuzzing process: {peak_kib // 1024} MB (goal under 300 MB)")
    for o in sorted(outcomes, key=lambda o: o.grew_kib)[-3:]:
        print(f"  #{o.index} raised it by {o.grew_kib // 1024} MB: {o.what}")
    print(f"exceptions escaping pynova.run(): {len(escaped)} (goal 0)")
    for o in escaped[:10]:
        print(f"  #{o.index} {o.what}: {o.error}")
    return not late and not escaped and peak_kib < 300 * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    images = example_images()
    started = time.monotonic()
    shares = [list(range(j, args.count, args.jobs)) for j in range(args.jobs)]
    with ProcessPoolExecutor(args.jobs) as pool:
        done = list(pool.map(run_share, [images] * args.jobs, [args.seed] * args.jobs, shares,
                             [args.timeout] * args.jobs))
    outcomes = sorted((o for share, _ in done for o in share), key=lambda o: o.index)
    peak = max(rss for _, rss in done)
    return 0 if report(outcomes, peak, args.timeout, time.monotonic() - started) else 1


if __name__ == "__main__":
    sys.exit(main())
