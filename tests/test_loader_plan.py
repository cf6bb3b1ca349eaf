"""Issue 9, item 4: the loader plans per segment and per range of pages.

The range-based plan must map exactly what the former page-by-page plan
mapped (every page any byte of a segment touches, the union of rights,
file frames, private copies with their zero-filled bytes) and refuse
exactly what it refused. The page-by-page planner is kept here as the
reference model, and both run on thousands of random segment sets.
"""

from __future__ import annotations

import random

import pytest

from pynova.kernel import Kernel
from pynova.kernel.elf import PF_W, PT_LOAD, ElfError
from pynova.kernel.layout import KERNEL_END, MBI_PHYS, PAGE_SIZE, align_down, align_up
from pynova.kernel.loader import check_segment, plan
from pynova.kernel.ptab import PRESENT, RW, USER

from elfcraft import RW as FLAGS_RW
from elfcraft import RX, Seg, elf

Page = tuple[int, int | None, frozenset[int]]   # attr, file page, zero-filled byte offsets


def reference_pages(image: bytes) -> dict[int, Page]:
    """The former planner: a dict entry per page; ElfError as it raised."""
    from pynova.kernel.elf import check_header, program_headers
    eh = check_header(image)
    loads = [(i, ph) for i, ph in enumerate(program_headers(image, eh))
             if ph.type == PT_LOAD and ph.memsz]
    if not loads:
        raise ElfError("no loadable (PT_LOAD) segment")
    pages: dict[int, dict] = {}  # type: ignore[type-arg]
    for i, ph in loads:
        check_segment(i, ph, len(image))
        attr = PRESENT | USER | (RW if ph.flags & PF_W else 0)
        file_end, mem_end = ph.vaddr + ph.filesz, ph.vaddr + ph.memsz
        for page in range(align_down(ph.vaddr), align_up(mem_end), PAGE_SIZE):
            p = pages.setdefault(page, {"attr": 0, "file": None, "zero": [], "bytes": []})
            p["attr"] |= attr
            lo, hi = max(ph.vaddr, page), min(file_end, page + PAGE_SIZE)
            if lo < hi:
                source = align_down(ph.offset) + page - align_down(ph.vaddr)
                if p["file"] not in (None, source):
                    raise ElfError("two file offsets for one page")
                p["file"] = source
                p["bytes"].append((lo - page, hi - page))
            zlo, zhi = max(file_end, page), min(mem_end, page + PAGE_SIZE)
            if zlo < zhi:
                p["zero"].append((zlo - page, zhi - page))
    for p in pages.values():
        for zlo, zhi in p["zero"]:
            for lo, hi in p["bytes"]:
                if lo < zhi and zlo < hi:
                    raise ElfError("file bytes in zero-filled memory")
    if not any(ph.vaddr <= eh.entry < ph.vaddr + ph.memsz for _, ph in loads):
        raise ElfError("entry outside")
    return {virt: (p["attr"], p["file"],
                   frozenset(b for lo, hi in p["zero"] for b in range(lo, hi))
                   if p["file"] is not None else frozenset())
            for virt, p in pages.items()}


def planned_pages(image: bytes) -> dict[int, Page]:
    """The range plan, expanded to the same per-page form."""
    out = {}
    for run in plan(image).runs:
        zero = frozenset(b for lo, hi in run.zero for b in range(lo, hi))
        for k in range(run.pages):
            source = None if run.file_page is None else run.file_page + k * PAGE_SIZE
            out[run.virt + k * PAGE_SIZE] = (run.attr, source, zero)
    return out


def random_image(rng: random.Random) -> bytes:
    segments = []
    for _ in range(rng.randint(1, 6)):
        vaddr = rng.randrange(0x1000, 0x9000, rng.choice([1, 0x10, 0x800, 0x1000]))
        offset = rng.randrange(0, 0x3000, PAGE_SIZE) + vaddr % PAGE_SIZE
        filesz = rng.choice([0, rng.randrange(1, 0x2800)])
        filesz = min(filesz, 0x4000 - offset)
        memsz = filesz + rng.choice([0, 0, rng.randrange(1, 0x3000)])
        segments.append(Seg(vaddr, offset, filesz, memsz, rng.choice([RX, FLAGS_RW])))
    entry = segments[0].vaddr
    return elf(segments, entry, size=0x4000, phoff=0x3F00 - 0x20 * len(segments))


def describe(image: bytes) -> str:
    from pynova.kernel.elf import check_header, program_headers
    return "; ".join(f"vaddr {ph.vaddr:#x} offset {ph.offset:#x} filesz {ph.filesz:#x} "
                     f"memsz {ph.memsz:#x} flags {ph.flags}"
                     for ph in program_headers(image, check_header(image)))


def outcome(planner, image: bytes) -> dict[int, Page] | str:  # type: ignore[no-untyped-def]
    try:
        return planner(image)  # type: ignore[no-any-return]
    except ElfError:
        return "rejected"


@pytest.mark.parametrize("seed", range(8))
def test_range_plan_maps_what_the_page_plan_mapped(seed: int) -> None:
    rng = random.Random(seed)
    kinds = {"accepted": 0, "rejected": 0}
    for _ in range(400):
        image = random_image(rng)
        ours, theirs = outcome(planned_pages, image), outcome(reference_pages, image)
        assert ours == theirs, describe(image)
        kinds["rejected" if ours == "rejected" else "accepted"] += 1
    assert min(kinds.values()) > 40, kinds  # both paths were exercised


def test_runs_are_sorted_disjoint_and_joined() -> None:
    # Two segments continuing one another in the file: one run; a
    # writable page in the middle splits it in three.
    image = elf([Seg(0x2000, 0x1000, 0x2000, 0x2000), Seg(0x4000, 0x3000, 0x1000, 0x1000)],
                0x2000, size=0x4000)
    assert [(r.virt, r.pages, r.kind) for r in plan(image).runs] == [(0x2000, 3, "file")]
    image = elf([Seg(0x2000, 0x1000, 0x3000, 0x3000),
                 Seg(0x3000, 0x2000, 0x10, 0x10, FLAGS_RW)], 0x2000, size=0x4000)
    runs = plan(image).runs
    assert [(r.virt, r.pages, r.attr & RW) for r in runs] == [
        (0x2000, 1, 0), (0x3000, 1, RW), (0x4000, 1, 0)]
    assert [r.file_page for r in runs] == [0x1000, 0x2000, 0x3000]


def test_the_overlap_errors_name_the_segment_and_the_address() -> None:
    clash = elf([Seg(0x2000, 0x1000, 0x100, 0x100), Seg(0x2800, 0x2800, 0x100, 0x100)],
                0x2000, size=0x3000)
    with pytest.raises(ElfError, match=r"segment 1: page 0x2000 maps file offset 0x2000 but "
                                       r"another segment maps 0x1000 there"):
        plan(clash)
    bss = elf([Seg(0x2000, 0x1000, 0x100, 0x400, FLAGS_RW), Seg(0x2200, 0x1200, 0x100, 0x100)],
              0x2000, size=0x3000)
    with pytest.raises(ElfError, match=r"segment 1: file bytes at 0x2200 overlap another "
                                       r"segment's zero-filled memory"):
        plan(bss)


@pytest.mark.parametrize("case", ["hello", "bss", "spread"])
def test_frames_needed_is_what_loading_takes(case: str) -> None:
    from pynova.kernel.pd import frames_needed
    from pynova.machine import Console, Machine
    from pynova.toolchain import example_path

    if case == "spread":   # bss in three 4 MiB regions, a copy page, no stack segment
        image = elf([Seg(0x2000, 0x1000, 0x180, 0x3000, FLAGS_RW),
                     Seg(0x7FF000, 0x2000, 0x10, 0x2000, FLAGS_RW),
                     Seg(0x10000000, 0, 0, 0x5000, FLAGS_RW)], 0x2000, size=0x3000)
    else:
        image = example_path(case).read_bytes()
    with Machine(16 << 20, Console()) as machine:
        kernel = Kernel(machine)
        kernel.boot(machine.load_multiboot([(image, case)], MBI_PHYS, KERNEL_END))
        free = kernel.kalloc.free_count
        kernel.root_invoke()
        # root_invoke takes one more frame: the page directory
        assert free - kernel.kalloc.free_count == frames_needed(plan(image)) + 1
