"""The loader's plan: which user pages map which frames, checked first.

Like xv6's exec, everything is checked before anything is mapped: ``plan``
turns an ELF image into a list of ``Run`` (or raises ElfError), and
``Pd.load`` (pd.py) commits it. The seed maps ``align_up(filesz)`` pages from
``align_down(vaddr)`` and so loses the last page of a segment that straddles
a page boundary; pynova maps every page any byte of a segment touches.

The plan is made per segment and per range of pages, never per page, so its
cost grows with the number of program headers (at most ``MAX_PHNUM``, see
elf.py) and not with the sizes they claim: a header that asks for 3 GiB is
refused in microseconds. The pages mapped in all may not exceed the RAM.

The stack page (seed step 5: the kernel maps one page for the stack) lies
below the ELF file's ``stack_top`` symbol, or below 0x2000 (the seed's
stack_top) when the file has none.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from pynova.kernel.elf import (
    PF_W,
    PT_LOAD,
    ElfError,
    Image,
    Ph,
    check_header,
    find_symbol,
    program_headers,
)
from pynova.kernel.layout import (
    MAX_MEM,
    PAGE_SIZE,
    USER_BREAK_LIMIT,
    USER_END,
    USER_STACK_TOP,
    align_down,
    align_up,
)
from pynova.kernel.ptab import PRESENT, RW, USER

USER_PAGE = PRESENT | USER


class Run(NamedTuple):
    """``pages`` consecutive user pages from ``virt`` on, mapped alike.

    ``file_page`` is the module-relative offset of the frame behind ``virt``
    (the next pages follow it in the module); None means fresh zeroed
    frames. ``zero`` is only set on a run of one page: the byte ranges of
    that page (page-relative) that must read as zero (a ``.bss`` sharing
    the page with file bytes), so the page gets a private copy with them
    cleared.
    """

    virt: int
    pages: int
    attr: int
    file_page: int | None
    zero: tuple[tuple[int, int], ...] = ()

    @property
    def end(self) -> int:
        return self.virt + self.pages * PAGE_SIZE

    @property
    def kind(self) -> str:
        if self.file_page is None:
            return "zero"
        return "copy" if self.zero else "file"


class Plan(NamedTuple):
    entry: int
    runs: list[Run]             # sorted by address, disjoint
    needs_stack: bool           # False: a segment already maps the stack page
    stack_top: int = USER_STACK_TOP
    stack_symbol: bool = False  # stack_top came from the file's symbol table

    @property
    def stack_page(self) -> int:
        return align_down(self.stack_top - 1)

    @property
    def pages(self) -> int:
        return sum(run.pages for run in self.runs)

    @property
    def top(self) -> int:
        """Where the heap begins: the end of the highest mapped page (the
        stack page's too, when it lies above the segments)."""
        return break_above(self.runs[-1].end, self.stack_page, self.needs_stack)


def break_above(top: int, stack_page: int, fresh_stack: bool) -> int:
    """The initial break for segments that end at ``top``: above the stack
    page too when it is a page of its own above them (not at the very top
    of user space, where the heap could not grow anyway)."""
    if fresh_stack and top <= stack_page < USER_BREAK_LIMIT:
        return stack_page + PAGE_SIZE
    return top


def stack_top_of(image: Image) -> tuple[int, bool]:
    """(initial esp, whether the file named it): its ``stack_top`` symbol,
    else the seed's 0x2000."""
    top = find_symbol(image, "stack_top")
    if top is None:
        return USER_STACK_TOP, False
    if not PAGE_SIZE < top <= USER_END:
        raise ElfError(f"stack_top {top:#x} leaves no user page for the stack "
                       f"(it must lie in {PAGE_SIZE + 1:#x}..{USER_END:#x})")
    return top, True


class _Seg(NamedTuple):
    """One PT_LOAD segment, as byte and page intervals."""

    number: int              # its index among the program headers
    vaddr: int
    file_end: int            # vaddr + filesz
    mem_end: int             # vaddr + memsz
    delta: int               # file page offset minus virtual page
    writable: bool

    @classmethod
    def of(cls, number: int, ph: Ph) -> _Seg:
        return cls(number, ph.vaddr, ph.vaddr + ph.filesz, ph.vaddr + ph.memsz,
                   align_down(ph.offset) - align_down(ph.vaddr), bool(ph.flags & PF_W))

    @property
    def span(self) -> tuple[int, int]:
        """Every page any byte of the segment touches."""
        return align_down(self.vaddr), align_up(self.mem_end)

    @property
    def file_pages(self) -> tuple[int, int]:
        """The pages holding its file bytes (none without any)."""
        if self.vaddr == self.file_end:
            return self.vaddr, self.vaddr
        return align_down(self.vaddr), align_up(self.file_end)


def check_segment(i: int, ph: Ph, size: int) -> None:
    """The checks of one PT_LOAD segment ``i`` of a module of ``size`` bytes."""
    if ph.filesz > ph.memsz:
        raise ElfError(f"segment {i}: file size {ph.filesz:#x} exceeds memory size {ph.memsz:#x}")
    if ph.vaddr % PAGE_SIZE != ph.offset % PAGE_SIZE:
        raise ElfError(f"segment {i}: vaddr {ph.vaddr:#x} and offset {ph.offset:#x} "
                       f"differ modulo the page size")
    if ph.offset + ph.filesz > size:
        raise ElfError(f"segment {i}: file bytes {ph.offset:#x}+{ph.filesz:#x} lie outside "
                       f"the module of {size} bytes")
    if align_down(ph.vaddr) < PAGE_SIZE:
        raise ElfError(f"segment {i}: vaddr {ph.vaddr:#x} covers page 0")
    if ph.vaddr + ph.memsz > USER_END:
        raise ElfError(f"segment {i}: {ph.vaddr:#x}+{ph.memsz:#x} reaches kernel space "
                       f"(0xc0000000 and up)")


# ------------------------------------------------------------ intervals
def _union(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint, merged [lo, hi) intervals (empty ones dropped)."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(i for i in intervals if i[0] < i[1]):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _file_ranges(segs: list[_Seg]) -> list[tuple[int, int, int, int]]:
    """(first page, end, delta, segment) for the pages mapped from the file,
    merged where segments agree; ElfError where two map one page from
    different file offsets."""
    by_delta: dict[int, list[tuple[int, int, int]]] = {}
    for s in segs:
        lo, hi = s.file_pages
        if lo < hi:
            by_delta.setdefault(s.delta, []).append((lo, hi, s.number))
    ranges = []
    for delta, items in by_delta.items():
        for lo, hi, number in _merge_tagged(items):
            ranges.append((lo, hi, delta, number))
    ranges.sort()
    reach: tuple[int, int, int, int] | None = None
    for r in ranges:
        if reach is not None and r[0] < reach[1]:
            page = r[0]
            raise ElfError(f"segment {r[3]}: page {page:#x} maps file offset {page + r[2]:#x} "
                           f"but another segment maps {page + reach[2]:#x} there")
        if reach is None or r[1] > reach[1]:
            reach = r
    return ranges


def _merge_tagged(items: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Merge overlapping (lo, hi, tag) intervals, keeping the first tag."""
    out: list[tuple[int, int, int]] = []
    for lo, hi, tag in sorted(items):
        if out and lo < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi), out[-1][2])
        else:
            out.append((lo, hi, tag))
    return out


def _check_zero_fill(segs: list[_Seg], zero: list[tuple[int, int]]) -> None:
    """No segment's file bytes may lie in another one's zero-filled part."""
    ends = [hi for _, hi in zero]
    for s in segs:
        at = bisect.bisect_right(ends, s.vaddr)
        if s.vaddr < s.file_end and at < len(zero) and zero[at][0] < s.file_end:
            raise ElfError(f"segment {s.number}: file bytes at {max(s.vaddr, zero[at][0]):#x} "
                           f"overlap another segment's zero-filled memory")


def _zero_on_page(zero: list[tuple[int, int]], ends: list[int],
                  page: int) -> tuple[tuple[int, int], ...]:
    """The zero-filled byte ranges of one page, page-relative (``ends``:
    the ends of the ``zero`` intervals)."""
    out = []
    at = bisect.bisect_right(ends, page)
    while at < len(zero) and zero[at][0] < page + PAGE_SIZE:
        lo, hi = zero[at]
        out.append((max(lo, page) - page, min(hi, page + PAGE_SIZE) - page))
        at += 1
    return tuple(out)


ZeroRanges = tuple[tuple[int, int], ...]


def _copy_pages(segs: list[_Seg], zero: list[tuple[int, int]]) -> dict[int, ZeroRanges]:
    """File pages that also hold zero-filled bytes. Only a segment's first
    and last file page can: inside, every byte is its file's."""
    edges = {align_down(p) for s in segs if s.vaddr < s.file_end
             for p in (s.vaddr, s.file_end - 1)}
    ends = [hi for _, hi in zero]
    copies = {}
    for page in edges:
        ranges = _zero_on_page(zero, ends, page)
        if ranges:
            copies[page] = ranges
    return copies


class _Cursor:
    """Walks a sorted list of disjoint (lo, hi, ...) intervals in address order."""

    def __init__(self, intervals: Sequence[tuple[int, ...]]) -> None:
        self._items = intervals
        self._at = 0

    def at(self, addr: int) -> tuple[int, ...] | None:
        """The interval holding ``addr`` (addresses must not go down), or None."""
        items = self._items
        while self._at < len(items) and items[self._at][1] <= addr:
            self._at += 1
        if self._at < len(items) and items[self._at][0] <= addr:
            return items[self._at]
        return None


def _runs(segs: list[_Seg], files: list[tuple[int, int, int, int]],
          copies: dict[int, ZeroRanges]) -> list[Run]:
    """Cut the address space where anything changes and describe each piece."""
    spans = _union(s.span for s in segs)
    writable = _union(s.span for s in segs if s.writable)
    cuts = sorted({x for lo, hi in spans for x in (lo, hi)}
                  | {x for lo, hi in writable for x in (lo, hi)}
                  | {x for f in files for x in (f[0], f[1])}
                  | {x for page in copies for x in (page, page + PAGE_SIZE)})
    in_span, in_writable, in_file = _Cursor(spans), _Cursor(writable), _Cursor(files)
    runs: list[Run] = []
    for lo, hi in itertools.pairwise(cuts):
        if in_span.at(lo) is None:
            continue
        attr = USER_PAGE | (RW if in_writable.at(lo) is not None else 0)
        file = in_file.at(lo)
        source = None if file is None else lo + file[2]
        _append(runs, Run(lo, (hi - lo) // PAGE_SIZE, attr, source, copies.get(lo, ())))
    return runs


def _append(runs: list[Run], run: Run) -> None:
    """Add a run, joining it to the previous one when it continues it."""
    if runs:
        last = runs[-1]
        follows = last.file_page is None if run.file_page is None else \
            last.file_page is not None and last.file_page + last.pages * PAGE_SIZE == run.file_page
        if last.end == run.virt and last.attr == run.attr and follows \
                and not last.zero and not run.zero:
            runs[-1] = last._replace(pages=last.pages + run.pages)
            return
    runs.append(run)


def _needs_stack(runs: list[Run], page: int) -> bool:
    """Whether the kernel must map the initial stack page: no segment maps it."""
    return not any(run.virt <= page < run.end for run in runs)


def loadable(phs: Sequence[Ph]) -> list[tuple[int, Ph]]:
    """The PT_LOAD headers that load anything, with their index in the table."""
    return [(i, ph) for i, ph in enumerate(phs) if ph.type == PT_LOAD and ph.memsz]


def plan(image: Image, ram: int = MAX_MEM) -> Plan:
    """Check an ELF image and plan its address space for a machine with
    ``ram`` bytes of RAM; raise ElfError on the first check that fails."""
    eh = check_header(image)
    return plan_segments(image, eh.entry, loadable(program_headers(image, eh)), ram)


def plan_segments(image: Image, entry: int, loads: Sequence[tuple[int, Ph]],
                  ram: int = MAX_MEM) -> Plan:
    """``plan`` for the loadable segments ``loads`` ((header index, Ph))
    of a file whose header has been checked."""
    if not loads:
        raise ElfError("no loadable (PT_LOAD) segment")
    for i, ph in loads:
        check_segment(i, ph, len(image))
    segs = [_Seg.of(i, ph) for i, ph in loads]
    files = _file_ranges(segs)
    zero = _union((s.file_end, s.mem_end) for s in segs)
    _check_zero_fill(segs, zero)
    runs = _runs(segs, files, _copy_pages(segs, zero))
    mapped = sum(run.pages for run in runs) * PAGE_SIZE
    if mapped > ram:
        raise ElfError(f"the segments map {mapped:#x} bytes, more than the "
                       f"{ram >> 20} MiB of RAM")
    if not any(ph.vaddr <= entry < ph.vaddr + ph.memsz for _, ph in loads):
        raise ElfError(f"entry point {entry:#x} lies outside every loadable segment")
    top, named = stack_top_of(image)
    return Plan(entry, runs, _needs_stack(runs, align_down(top - 1)), top, named)
