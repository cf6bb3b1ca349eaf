"""The root task: what the kernel hands to ``root_invoke`` (``k``), and
what it does around it.

The seed's Ec::root_invoke starts the boot module as the first user program
in three steps: read the ELF program headers, map every page of every
segment, iret to the entry point. pynova's own steps are in root_invoke.py
(lab elf's solution); they, or a student's, work through a ``RootTask``:

    k.module         the boot module: start, end (physical), name
    k.image          its bytes, read-only (valid while root_invoke runs)
    k.stack_top      the initial esp: the ELF's stack_top symbol, or 0x2000
    k.print(line)    a line on the console
    k.read(phys, n)  n bytes of physical memory
    k.insert_mapping(virt, phys, attr)   map one page (the insert_mapping part)
    k.alloc_frame()  a fresh frame that reads as zero (for .bss), the task's
    k.iret(frame)    the five words iret pops: the kernel enters user mode with them

and pynova's own helpers for what the seed leaves out (its step 2 uses
them): ``plan`` checks every segment and says which frame and rights each
page gets (loader.py), ``frames`` gives the frames of a run of pages, and
``insert_mappings`` maps a run at once.

Around it, the kernel (kernel.py) makes the task's Pd first and, once
root_invoke has returned, maps the stack page below stack_top (the seed's
step 5; unless a segment maps that page), sets the initial break above the
highest mapped page and makes the first Ec from the iret frame, verbatim:
a frame in the wrong order faults in the CPU's iret.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from pynova.kernel.elf import PF_W, PF_X, ElfError, Ph, check_header, program_headers
from pynova.kernel.kalloc import OutOfMemory
from pynova.kernel.layout import PAGE_SIZE, align_down
from pynova.kernel.loader import Plan, Run, break_above, plan_segments, stack_top_of
from pynova.kernel.pd import Pd, frames_needed
from pynova.kernel.ptab import PRESENT, RW, USER
from pynova.machine.console import Console
from pynova.machine.memory import PhysicalMemory

#: Words in the frame iret pops when it returns to another privilege level
#: (Intel SDM vol. 3A, 6.12.1, Figure 6-4): eip, cs, eflags, esp, ss.
IRET_WORDS = 5
STACK_ATTR = PRESENT | RW | USER


class BootModule(NamedTuple):
    """Where the boot loader put the program (Multiboot module)."""

    start: int   # physical address of its first byte (page-aligned)
    end: int     # physical address after its last byte
    name: str    # its command line: the program's name


class Program(NamedTuple):
    """What step 1 finds in the ELF headers."""

    entry: int                   # where the program starts: the user eip
    segments: tuple[Ph, ...]     # the PT_LOAD program headers, in file order


def segment_line(virt: int, phys: int, size: int, flags: int) -> str:
    """The line step 1 prints for a segment: virt and phys aligned down,
    the size aligned up, and the rights its flags ask for."""
    rights = "r" + ("w" if flags & PF_W else "-") + ("x" if flags & PF_X else "-")
    return f"  segment virt {virt:#010x} phys {phys:#010x} size {size:#x} {rights}"


def stack_line(page: int, stack_top: int, named: bool, fresh: bool) -> str:
    """Where the kernel put the stack page, and why there."""
    why = f"below stack_top {stack_top:#x}" if named else \
        f"below {stack_top:#x}: the file has no stack_top symbol"
    where = "fresh page" if fresh else "inside a loaded segment"
    return f"  stack   virt {page:#010x} size {PAGE_SIZE:#x} rw- ({where} {why})"


def check_frame(frame: Iterable[object]) -> tuple[int, ...]:
    """The iret frame as five 32-bit words; ValueError otherwise."""
    try:
        words = tuple(frame)
    except TypeError:
        raise ValueError(f"iret frame: expected a list of {IRET_WORDS} words "
                         f"[eip, cs, eflags, esp, ss], got {frame!r}") from None
    if len(words) != IRET_WORDS:
        raise ValueError(f"iret frame: expected {IRET_WORDS} words [eip, cs, eflags, esp, ss], "
                         f"got {len(words)}: {list(words)!r}")
    for n, word in enumerate(words):
        if isinstance(word, bool) or not isinstance(word, int) or not 0 <= word <= 0xFFFFFFFF:
            raise ValueError(f"iret frame: word {n} is {word!r}, not a 32-bit number")
    return words  # type: ignore[return-value]  # checked: all ints


class RootTask:
    """``k``: what root_invoke works with (see the module's doc)."""

    def __init__(self, memory: PhysicalMemory, console: Console, pd: Pd,
                 module: BootModule) -> None:
        self.module = module
        self.image: memoryview = memory.view[module.start:module.end].toreadonly()
        self._memory = memory
        self._console = console
        self._pd = pd
        self._stack: tuple[int, bool] | None = None
        #: The five words given to ``iret``, once it was called.
        self.frame: tuple[int, ...] | None = None
        #: The end of the highest page mapped through this object.
        self.top = 0

    # ---------------------------------------------------- the seed's tools
    @property
    def stack_top(self) -> int:
        """The user stack's top, the initial esp: the ELF file's
        ``stack_top`` symbol, or the seed's 0x2000 when it has none."""
        return self._stack_top()[0]

    def print(self, line: str) -> None:
        self._console.line(line)

    def read(self, phys: int, size: int) -> bytes:
        """``size`` bytes of physical memory at ``phys``."""
        return self._memory.read(phys, size)

    def insert_mapping(self, virt: int, phys: int, attr: int) -> None:
        """Map the page at ``virt`` to the frame at ``phys`` with ``attr``
        (PRESENT, RW, USER): the seed's Ptab::insert_mapping."""
        self._pd.ptab.insert_mapping(virt, phys, attr)
        self.top = max(self.top, virt + PAGE_SIZE)

    def alloc_frame(self) -> int:
        """A fresh frame that reads as zero, the task's (for .bss pages)."""
        return self._pd.fresh_frames(1)[0]

    def iret(self, frame: Sequence[int]) -> None:
        """Return to user mode through the five words iret pops: [eip, cs,
        eflags, esp, ss]. The kernel puts them on its stack as given and
        executes iret once root_invoke has returned."""
        if self.frame is not None:
            raise ValueError("iret: called twice (the first iret never returns)")
        self.frame = check_frame(frame)

    # ------------------------------------------------- pynova's own helpers
    def plan(self, program: Program) -> Plan:
        """The sanity checks of every segment and the pages they map, each
        with its frame and rights (loader.py): ElfError at the first check
        that fails, OutOfMemory when the free frames are too few; both
        before anything is mapped."""
        numbers = _header_numbers(self.image)
        loads = [(numbers.get(ph, n), ph) for n, ph in enumerate(program.segments)]
        plan = plan_segments(self.image, program.entry, loads, self._memory.size)
        self._stack = (plan.stack_top, plan.stack_symbol)
        if frames_needed(plan) > self._pd.kalloc.free_count:
            raise OutOfMemory("the module needs more frames than are free")
        return plan

    def frames(self, run: Run) -> Sequence[int]:
        """The frames for a run of the plan's pages: the module's own for
        file bytes, fresh zeroed ones for .bss, a private copy with the
        .bss bytes cleared for a page that holds both."""
        if run.file_page is None:
            return self._pd.fresh_frames(run.pages)
        first = self.module.start + run.file_page
        if run.zero:
            return [self._pd.copy_frame(first, run.zero)]
        return range(first, first + run.pages * PAGE_SIZE, PAGE_SIZE)

    def insert_mappings(self, virt: int, frames: Sequence[int], attr: int) -> None:
        """insert_mapping for consecutive pages from ``virt`` on, the n-th
        to ``frames[n]``, in one go."""
        self._pd.ptab.insert_mappings(virt, frames, attr)
        if frames:
            self.top = max(self.top, virt + len(frames) * PAGE_SIZE)

    # ------------------------------------------------------- kernel side
    def _stack_top(self) -> tuple[int, bool]:
        if self._stack is None:
            self._stack = stack_top_of(self.image)
        return self._stack

    def map_stack(self) -> str:
        """The seed's step 5: a fresh page below stack_top, unless a
        segment maps it; then the initial break. Returns the line to print."""
        top, named = self._stack_top()
        page = align_down(top - 1)
        fresh = not self._pd.ptab.walk(page).present
        if fresh:
            self._pd.map_fresh(page, STACK_ATTR)
        self._pd.initial_break = self._pd.brk = break_above(self.top, page, fresh)
        return stack_line(page, top, named, fresh)

    def close(self) -> None:
        """root_invoke is over: the image's view of guest RAM goes."""
        self.image.release()


def _header_numbers(image: memoryview) -> dict[Ph, int]:
    """Each program header's index in the file's table (the first of equal
    ones), so that loader errors name segments as readelf lists them."""
    try:
        phs = program_headers(image, check_header(image))
    except ElfError:
        return {}
    numbers: dict[Ph, int] = {}
    for i, ph in enumerate(phs):
        numbers.setdefault(ph, i)
    return numbers


