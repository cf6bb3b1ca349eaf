"""The loader's plan: which user page maps which frame, checked first.

Like xv6's exec, everything is checked before anything is mapped: ``plan``
turns an ELF image into a list of ``PagePlan`` (or raises ElfError), and
``Pd.load`` (pd.py) commits it. The seed maps ``align_up(filesz)`` pages from
``align_down(vaddr)`` and so loses the last page of a segment that straddles
a page boundary; pynova maps every page any byte of a segment touches.

The stack page (seed step 5: the kernel maps one page for the stack) lies
below the ELF file's ``stack_top`` symbol, or below 0x2000 (the seed's
stack_top) when the file has none.
"""

from __future__ import annotations

from typing import NamedTuple

from pynova.kernel.elf import (
    PF_W,
    PT_LOAD,
    Eh,
    ElfError,
    Ph,
    check_header,
    find_symbol,
    program_headers,
)
from pynova.kernel.layout import PAGE_SIZE, USER_END, USER_STACK_TOP, align_down, align_up
from pynova.kernel.ptab import PRESENT, RW, USER


class PagePlan:
    """One user page: its source and attributes.

    ``file_page`` is the module-relative offset of the page whose frame is
    mapped (None: a fresh zeroed frame). ``zero`` lists byte ranges of the page
    (page-relative) that must read as zero (a ``.bss`` sharing the page with
    file bytes): the page then gets a private copy with those bytes cleared.
    """

    def __init__(self, virt: int, attr: int) -> None:
        self.virt = virt
        self.attr = attr
        self.file_page: int | None = None
        self.zero: list[tuple[int, int]] = []
        self.file_bytes: list[tuple[int, int, int]] = []  # (lo, hi, segment)

    @property
    def kind(self) -> str:
        if self.file_page is None:
            return "zero"
        return "copy" if self.zero else "file"


class Plan(NamedTuple):
    eh: Eh
    phs: list[Ph]
    pages: dict[int, PagePlan]
    needs_stack: bool           # False: a segment already maps the stack page
    stack_top: int = USER_STACK_TOP
    stack_symbol: bool = False  # stack_top came from the file's symbol table

    @property
    def stack_page(self) -> int:
        return align_down(self.stack_top - 1)


def stack_top_of(image: bytes) -> tuple[int, bool]:
    """(initial esp, whether the file named it): its ``stack_top`` symbol,
    else the seed's 0x2000."""
    top = find_symbol(image, "stack_top")
    if top is None:
        return USER_STACK_TOP, False
    if not PAGE_SIZE < top <= USER_END:
        raise ElfError(f"stack_top {top:#x} leaves no user page for the stack "
                       f"(it must lie in {PAGE_SIZE + 1:#x}..{USER_END:#x})")
    return top, True


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


def _add_segment(pages: dict[int, PagePlan], i: int, ph: Ph) -> None:
    attr = PRESENT | USER | (RW if ph.flags & PF_W else 0)
    file_end = ph.vaddr + ph.filesz
    mem_end = ph.vaddr + ph.memsz
    for page in range(align_down(ph.vaddr), align_up(mem_end), PAGE_SIZE):
        plan = pages.setdefault(page, PagePlan(page, 0))
        plan.attr |= attr
        lo, hi = max(ph.vaddr, page), min(file_end, page + PAGE_SIZE)
        if lo < hi:
            source = align_down(ph.offset) + page - align_down(ph.vaddr)
            if plan.file_page not in (None, source):
                raise ElfError(f"segment {i}: page {page:#x} maps file offset {source:#x} "
                               f"but another segment maps {plan.file_page:#x} there")
            plan.file_page = source
            plan.file_bytes.append((lo - page, hi - page, i))
        zlo, zhi = max(file_end, page), min(mem_end, page + PAGE_SIZE)
        if zlo < zhi:
            plan.zero.append((zlo - page, zhi - page))


def _check_overlaps(pages: dict[int, PagePlan]) -> None:
    for plan in pages.values():
        for zlo, zhi in plan.zero:
            for lo, hi, seg in plan.file_bytes:
                if lo < zhi and zlo < hi:
                    raise ElfError(f"segment {seg}: file bytes at {plan.virt + lo:#x} overlap "
                                   f"another segment's zero-filled memory")


def plan(image: bytes) -> Plan:
    """Check an ELF image and plan its address space; raise ElfError on the
    first check that fails."""
    eh = check_header(image)
    phs = program_headers(image, eh)
    pages: dict[int, PagePlan] = {}
    loads = [(i, ph) for i, ph in enumerate(phs) if ph.type == PT_LOAD and ph.memsz]
    if not loads:
        raise ElfError("no loadable (PT_LOAD) segment")
    for i, ph in loads:
        check_segment(i, ph, len(image))
        _add_segment(pages, i, ph)
    _check_overlaps(pages)
    if not any(ph.vaddr <= eh.entry < ph.vaddr + ph.memsz for _, ph in loads):
        raise ElfError(f"entry point {eh.entry:#x} lies outside every loadable segment")
    top, named = stack_top_of(image)
    stack_page = align_down(top - 1)
    return Plan(eh, phs, dict(sorted(pages.items())), stack_page not in pages, top, named)
