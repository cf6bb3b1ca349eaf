"""Lab brk (the course's lab 10): the nbrk system call (docs/labs/brk.md).

The student's file is the marked region of pynova/kernel/heap.py; the
kernel calls the student's ``nbrk`` through its Parts for call 3. The
checks call it on a booted kernel of the course's size (16 MiB, frames
full of junk, as in every lab run) and read back what it did: the value
it returned, the break, every page-table entry from guest RAM, the
free-frame count from the allocator. Then a program uses it from ring 3,
and a seeded run of calls with any argument compares it call by call with
pynova's own.
"""

from __future__ import annotations

import random
import re
import struct
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pynova.kernel.kalloc import JUNK, OutOfMemory
from pynova.kernel.kernel import Kernel
from pynova.kernel.layout import (
    PAGE_MASK,
    PAGE_SIZE,
    USER_BREAK_LIMIT,
    USER_END,
    align_down,
    align_up,
)
from pynova.kernel.parts import PYNOVA, PartError, Parts, check_break, word_result
from pynova.kernel.pd import Heap, UserMemoryError
from pynova.kernel.ptab import KERNEL_PDE_FIRST, PRESENT, RW, USER
from pynova.labs import kit
from pynova.labs.kit import entry_text, function, program
from pynova.labs.lab import Check, CheckContext, Lab, Student, WorkspaceFile, fail
from pynova.labs.programs import build
from pynova.labs.student import student_traceback

STUDENT_FILE = "brk_lab.py"
PROGRAMS = ("hello", "nbrk_probe")
HEAP_ATTR = PRESENT | RW | USER
#: Bytes of address space one page table maps.
TABLE_SPAN = 1 << 22
#: The heap the top-bound checks start near the limit with.
HIGH_BREAK = USER_BREAK_LIMIT - 4 * PAGE_SIZE
#: The seeded run of calls.
FUZZ_SEED = 10
FUZZ_CALLS = 400
#: Frames the seeded run leaves free: a grow of a few hundred pages runs out.
FUZZ_FREE = 400

ASKS = "step 1: nbrk(0) returns the break; an address out of bounds returns 0"
GROW = "step 2: growing maps fresh zeroed user pages (PTEs read back)"
EDGES = "step 2: exactly the pages below the break, at page boundaries"
ZERO = "step 3: memory between the old and the new break reads zero"
SHRINK = "step 4: shrinking unmaps, gives frames and empty page tables back, flushes"
PROBE = "a program's view at 16 MiB: nbrk_probe (grow, zero, shrink, a page given back faults)"
OOM = "out of memory at 16 MiB: a failed grow leaves everything exactly as it was"
FUZZ = f"no call crashes the kernel: {FUZZ_CALLS} seeded calls, any argument"

OOM_WHY = ("OutOfMemory is how heap.alloc_zeroed_frame() and heap.insert_mapping() say "
           "that no frame is left: nbrk must catch it, give back everything it took and "
           "return 0; an exception out of a system call ends the whole machine")
ANY_ARGUMENT = ("a program can put any 32-bit number into esi: nbrk must answer each with a "
                "number (0 when it cannot do what it is asked) and never crash the kernel")
ZERO_WHY = ("new heap memory must read as zero (the ABI; calloc relies on it): a frame from "
            "heap.alloc_frame() holds what its last user left (in a lab, kalloc fills every "
            "frame with 0x01 bytes, as xv6's kfree does): take heap.alloc_zeroed_frame()")


def own_parts(student: Student) -> Parts:
    return PYNOVA._replace(nbrk=function(student, "nbrk"))


# ------------------------------------------------------- the address space
class Space(NamedTuple):
    """What a task's address space is, read back: the break, the
    free-frame count, the 768 user directory entries and the entries of
    every page table they point to."""

    brk: int
    free: int
    pdes: tuple[int, ...]
    tables: dict[int, tuple[int, ...]]

    def pte(self, virt: int) -> int:
        table = self.tables.get(virt >> 22)
        return table[(virt >> 12) & 0x3FF] if table is not None else 0

    def pages(self) -> dict[int, int]:
        """{virtual page: PTE} of every present user page."""
        return {(i << 22) | (j << 12): pte for i, table in self.tables.items()
                for j, pte in enumerate(table) if pte & PRESENT}


def space(kernel: Kernel) -> Space:
    assert kernel.pd is not None and kernel.kalloc is not None
    mem, root = kernel.memory, kernel.pd.ptab.root
    pdes = struct.unpack(f"<{KERNEL_PDE_FIRST}I", mem.read(root, KERNEL_PDE_FIRST * 4))
    tables = {i: struct.unpack("<1024I", mem.read(pde & PAGE_MASK, PAGE_SIZE))
              for i, pde in enumerate(pdes) if pde & PRESENT}
    return Space(kernel.pd.heap.brk, kernel.kalloc.free_count, pdes, tables)


def span_text(pages: Sequence[int]) -> str:
    """'page 0x5000' or 'pages 0x5000..0x8000 (4)' (sorted, maybe with gaps)."""
    if len(pages) == 1:
        return f"page {pages[0]:#x}"
    return f"{len(pages)} pages {pages[0]:#x}..{pages[-1]:#x}"


def changes(before: Space, after: Space) -> list[str]:
    """What differs, in a few words each."""
    out = []
    if before.brk != after.brk:
        out.append(f"the break moved from {_num(before.brk)} to {_num(after.brk)}")
    if before.free != after.free:
        taken = before.free - after.free
        out.append(f"the free-frame count went from {before.free} to {after.free} ("
                   + (f"{_frames(taken)} not given back" if taken > 0
                      else f"{_frames(-taken)} too many given back") + ")")
    for i, (b, a) in enumerate(zip(before.pdes, after.pdes, strict=True)):
        if b != a:
            region = f"{i << 22:#x}..{((i + 1) << 22) - 1:#x}"
            if a & PRESENT and not b & PRESENT:
                out.append(f"PDE[{i}] ({region}) is present now: a page table was made and "
                           f"kept ({entry_text(a)})")
            elif b & PRESENT and not a & PRESENT:
                out.append(f"PDE[{i}] ({region}) was cleared: its page table is gone")
            else:
                out.append(f"PDE[{i}] changed: {entry_text(b)} -> {entry_text(a)}")
    old, new = before.pages(), after.pages()
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(v for v in set(old) & set(new) if old[v] != new[v])
    if added:
        out.append(f"{span_text(added)} mapped now")
    if removed:
        out.append(f"{span_text(removed)} no longer mapped")
    if changed:
        v = changed[0]
        out.append(f"the PTE of {span_text(changed)} changed (of {v:#x}: "
                   f"{entry_text(old[v])} -> {entry_text(new[v])})")
    return out


def _pages(lo: int, hi: int) -> str:
    """The heap pages [lo, hi), in words."""
    if hi - lo == PAGE_SIZE:
        return f"page {lo:#x}"
    return f"no page from {lo:#x} on" if hi <= lo else f"the pages {lo:#x}..{hi - PAGE_SIZE:#x}"


def _frames(n: int) -> str:
    return f"{n} frame{'' if n == 1 else 's'}"


def _num(value: object) -> str:
    return f"{value:#x}" if isinstance(value, int) else repr(value)


# ------------------------------------------------------ the student's nbrk
@dataclass
class Tested:
    """A booted kernel whose heap the student's nbrk works on, and the
    calls made so far (shown with a failure)."""

    kernel: Kernel
    heap: Heap
    nbrk: Callable[[Heap, int], object]
    student: Student
    root: Any
    calls: list[str] = field(default_factory=list)

    def space(self) -> Space:
        return space(self.kernel)

    @property
    def free(self) -> int:
        assert self.kernel.kalloc is not None
        return self.kernel.kalloc.free_count

    def call(self, arg: int) -> int:
        """nbrk(heap, arg) by the student's code; anything but a number
        0..2^32-1 (an exception, another value, a break that is not an
        address) is a failure that names the call."""
        self.calls.append(f"nbrk({arg:#x})")
        try:
            value = self.nbrk(self.heap, arg)
        except NotImplementedError:
            raise
        except OutOfMemory as err:
            raise fail(f"nbrk({arg:#x}) to return 0 when the frames run out",
                       f"OutOfMemory came out of your nbrk:\n{self._trace(err)}",
                       OOM_WHY) from None
        except Exception as err:  # noqa: BLE001 - the student's code may raise anything
            raise fail(f"nbrk({arg:#x}) to return a number",
                       f"it raised {type(err).__name__}:\n{self._trace(err)}",
                       ANY_ARGUMENT) from None
        try:
            result = word_result("nbrk", value, "0")
            check_break(self.heap)
        except PartError as err:
            raise fail(err.expected.replace("nbrk", f"nbrk({arg:#x})", 1), err.got,
                       err.why) from None
        return result

    def write(self, virt: int, data: bytes) -> None:
        """What a program does with its heap: write it (below the break)."""
        assert self.kernel.pd is not None
        try:
            self.kernel.pd.write_user(virt, data)
        except UserMemoryError as err:
            walk = self.kernel.pd.ptab.walk(err.addr)
            raise fail(f"the heap below the break {_num(self.heap.brk)} to be writable in "
                       f"ring 3, as a program writes it ({virt:#x}+{len(data):#x})",
                       f"PDE {entry_text(walk.pde)}" + (f", PTE {entry_text(walk.pte)}"
                                                        if walk.pde & PRESENT else "")
                       + f" ({self.history()})",
                       "; ".join(filter(None, (
                           kit.would_fault(walk, err.addr, write=True),
                           "every page from the initial break up to align_up(break) is "
                           "mapped PRESENT | RW | USER")))) from None

    def _trace(self, err: BaseException) -> str:
        trace = student_traceback(err, self.student.files, self.root)
        return trace if trace is not None else f"{type(err).__name__}: {err}"

    def history(self) -> str:
        shown = self.calls[-6:]
        more = f"{len(self.calls) - len(shown)} calls, then " if len(self.calls) > 6 else ""
        return f"the calls: {more}{', '.join(shown)}"


@contextmanager
def tested(ctx: CheckContext) -> Iterator[Tested]:
    """hello booted at 16 MiB (frames full of junk), its heap ready for
    the student's nbrk."""
    fn = function(ctx.student, "nbrk")
    with kit.booted(program("hello"), "hello", parts=own_parts(ctx.student)) as kernel:
        kernel.root_invoke()
        assert kernel.pd is not None
        yield Tested(kernel, kernel.pd.heap, fn, ctx.student, ctx.workspace.path)


def expect_return(arg: int, got: int, want: int, why: str) -> None:
    if got != want:
        raise fail(f"nbrk({arg:#x}) to return " + (f"{want:#x}" if want else "0 (refused)"),
                   f"{got:#x}", why)


def expect_break(t: Tested, arg: int, want: int, why: str) -> None:
    if t.heap.brk != want:
        raise fail(f"the break to be {want:#x} after nbrk({arg:#x})",
                   f"heap.brk = {_num(t.heap.brk)}", why)


def expect_unchanged(t: Tested, arg: int, before: Space, why: str) -> None:
    diff = changes(before, t.space())
    if diff:
        raise fail(f"nbrk({arg:#x}) to change nothing", "; ".join(diff), why)


# ---------------------------------------------------------------- step 1
def check_asks(ctx: CheckContext) -> None:
    with tested(ctx) as t:
        b0 = t.heap.brk
        got = t.call(0)
        expect_return(0, got, b0, "0 only asks: nbrk(0) returns the break, heap.brk (the "
                                     "libc's nbrk(NULL); malloc starts its heap there)")
        below = ("it lies below the initial break {b0:#x}: the program's own data and "
                 "code are there, and the heap never shrinks into them")
        for arg in (b0 - 1, b0 - PAGE_SIZE, 0x1000, 1):
            refused(t, arg, below.format(b0=b0))
        for arg in (0xC0000000, 0xC0001000, 0xFFFFFFFF):
            refused(t, arg, f"{arg:#x} lies in the kernel's half (from 0xC0000000): its "
                            f"pages are the kernel's, a user heap never reaches there")
        # The top bound itself, from a heap that starts right below it.
        t.heap.initial_break = t.heap.brk = HIGH_BREAK
        for arg in (USER_BREAK_LIMIT + 1, USER_BREAK_LIMIT + PAGE_SIZE):
            refused(t, arg, f"{arg:#x} lies above USER_BREAK_LIMIT {USER_BREAK_LIMIT:#x}: "
                            f"the page above it is the last user page (the 2022 layout's "
                            f"stack), and the kernel's half begins at 0xC0000000")
        refused(t, HIGH_BREAK - 1, below.format(b0=HIGH_BREAK))
        got = t.call(0)
        expect_return(0, got, HIGH_BREAK, "0 only asks: nbrk(0) returns heap.brk")


def refused(t: Tested, arg: int, why: str) -> None:
    before = t.space()
    try:
        got = t.call(arg)
    except NotImplementedError as err:
        step = re.match(r"step (\d+)", str(err))
        if step is None or step.group(1) == "1":
            raise
        raise fail(f"nbrk({arg:#x}) to return 0 (refused) in step 1",
                   f"it went on to step {step.group(1)} (NotImplementedError: {err})",
                   why) from None
    expect_return(arg, got, 0, why)
    expect_unchanged(t, arg, before, why + "; a refused call leaves everything as it was")


# ---------------------------------------------------------------- step 2
def check_grow(ctx: CheckContext) -> None:
    with tested(ctx) as t:
        b0 = t.heap.brk
        grown(t, b0 + 3 * PAGE_SIZE + 100)
        grown(t, TABLE_SPAN + 2 * PAGE_SIZE)      # into a second page table


def grown(t: Tested, new: int) -> None:
    """nbrk(new) grows the heap: its return value, the break, and every
    page it must have mapped, read back."""
    old, before = t.heap.brk, t.space()
    got = t.call(new)
    expect_return(new, got, old, "a call that moves the break returns the previous one")
    expect_break(t, new, new, "nbrk sets heap.brk = new_break when it succeeds")
    after = t.space()
    pages = list(range(align_up(old), align_up(new), PAGE_SIZE))
    frames: dict[int, int] = {}
    for page in pages:
        expect_heap_page(t, page, new, after)
        frame = after.pte(page) & PAGE_MASK
        if frame in frames:
            raise fail("a frame of its own for every new page",
                       f"pages {frames[frame]:#x} and {page:#x} both map frame {frame:#x}",
                       "a write to one page would change the other: take a new frame "
                       "for each page")
        frames[frame] = page
    expect_zero(t, pages)
    expect_pages_below(t, align_up(old), new, align_up(new) + PAGE_SIZE)
    tables = sum(1 for i in {p >> 22 for p in pages} if not before.pdes[i] & PRESENT)
    want = before.free - len(pages) - tables
    if after.free != want:
        raise fail(f"{len(pages)} frames for {span_text(pages)}"
                   + (f" and {tables} for a new page table" if tables else "")
                   + f": {want} frames free", f"{after.free} frames free",
                   "nbrk takes one frame per new page (and one per new page table) "
                   "and keeps no other" if after.free < want else
                   "the frames of the new pages are in use: did nbrk give some back?")


def expect_heap_page(t: Tested, page: int, brk: int, after: Space) -> None:
    walk = t.kernel.pd.ptab.walk(page) if t.kernel.pd is not None else None
    assert walk is not None
    pte = after.pte(page)
    if pte & HEAP_ATTR == HEAP_ATTR and walk.attr & HEAP_ATTR == HEAP_ATTR:
        return
    got = f"PDE {entry_text(walk.pde)}" + (f", PTE {entry_text(walk.pte)}"
                                           if walk.pde & PRESENT else "")
    hardware = kit.would_fault(walk, page, write=True)
    why = (f"page {page:#x} holds heap bytes below the break {brk:#x}, and the program "
           f"writes them in ring 3: map it with HEAP_ATTR, PRESENT | RW | USER")
    raise fail(f"page {page:#x} mapped with P RW US", got,
               f"{hardware}; {why}" if hardware else why)


def expect_zero(t: Tested, pages: Sequence[int]) -> None:
    for page in pages:
        data = t.kernel.pd.read_user(page, PAGE_SIZE) if t.kernel.pd else b""
        if data.count(0) != PAGE_SIZE:
            first = next(i for i, b in enumerate(data) if b)
            what = "0x01 bytes: kalloc's junk" if data[first] == JUNK else \
                f"{data[first]:#04x}"
            raise fail(f"page {page:#x}, new heap memory, to read as zero",
                       f"byte {page + first:#x} reads {data[first]:#04x} "
                       f"({PAGE_SIZE - data.count(0)} of its 4096 bytes not zero; {what})",
                       ZERO_WHY)


def check_edges(ctx: CheckContext) -> None:
    with tested(ctx) as t:
        b0 = t.heap.brk
        for new in (b0 + PAGE_SIZE, b0 + PAGE_SIZE + 1, b0 + 2 * PAGE_SIZE - 1,
                    b0 + 2 * PAGE_SIZE, b0 + 3 * PAGE_SIZE + 1, b0 + 5 * PAGE_SIZE):
            old = t.heap.brk
            got = t.call(new)
            expect_return(new, got, old, "a call that moves the break returns the "
                                            "previous one")
            expect_break(t, new, new, "nbrk sets heap.brk = new_break when it succeeds")
            expect_pages_below(t, b0, new, b0 + 8 * PAGE_SIZE)


def expect_pages_below(t: Tested, b0: int, brk: int, top: int) -> None:
    """The pages of [b0, top) are mapped exactly when they hold a byte
    below the break."""
    after = t.space()
    for page in range(b0, top, PAGE_SIZE):
        mapped = bool(after.pte(page) & PRESENT)
        needed = page < align_up(brk)
        if mapped and not needed:
            raise fail(f"{_pages(b0, align_up(brk))} mapped for the break {brk:#x}, and page "
                       f"{page:#x} not",
                       f"page {page:#x} is mapped too ({t.history()})",
                       f"no byte below the break lies in page {page:#x}: the heap ends at "
                       f"{brk - 1:#x}. The pages to map end at align_up(new_break) = "
                       f"{align_up(brk):#x}: a break on a page boundary needs no page of "
                       f"its own (one page too many at a page boundary)")
        if needed and not mapped:
            raise fail(f"{_pages(b0, align_up(brk))} mapped for the break {brk:#x}",
                       f"page {page:#x} is not mapped ({t.history()})",
                       f"byte {max(page, b0):#x} lies below the break {brk:#x}, in page "
                       f"{page:#x}: a program may use it, so its page must be mapped. The "
                       f"pages to map run up to align_up(new_break) = {align_up(brk):#x}, "
                       f"not align_down(new_break) = {align_down(brk):#x} (one page short "
                       f"when the break is not on a page boundary)")


# ---------------------------------------------------------------- step 3
def check_zero(ctx: CheckContext) -> None:
    with tested(ctx) as t:
        assert t.kernel.pd is not None
        pd, b0 = t.kernel.pd, t.heap.brk
        t.call(b0 + 100)
        expect_pages_below(t, b0, b0 + 100, b0 + 4 * PAGE_SIZE)
        # The program's 100 bytes, and what an earlier, larger heap left above
        # the break (a shrink within a page keeps the page as it is).
        t.write(b0, b"\xab" * PAGE_SIZE)
        for new in (b0 + 1500, b0 + PAGE_SIZE + 50):
            old = t.heap.brk
            got = t.call(new)
            expect_return(new, got, old, "a call that moves the break returns the "
                                            "previous one")
            data = pd.read_user(b0, new - b0)
            if data[:100] != b"\xab" * 100:
                bad = next(i for i in range(100) if data[i] != 0xAB)
                raise fail(f"the 100 bytes below {b0 + 100:#x} (the heap the program kept) "
                           f"to hold what it wrote, 0xab",
                           f"byte {b0 + bad:#x} reads {data[bad]:#04x} after "
                           f"nbrk({new:#x})",
                           "only the memory between the old and the new break is cleared: "
                           "the bytes below the old break are the program's")
            tail = data[old - b0:]
            if tail.count(0) != len(tail):
                first = next(i for i, b in enumerate(tail) if b)
                raise fail(f"[{old:#x}, {new:#x}), between the old and the new break, to "
                           f"read as zero after nbrk({new:#x})",
                           f"byte {old + first:#x} reads {tail[first]:#04x}, what the "
                           f"program wrote there while it was below an earlier break "
                           f"({t.history()})",
                           f"a shrink within a page keeps the page, with what the program "
                           f"wrote above the new break: when the break goes up again, clear "
                           f"from the old break {old:#x} up to the new break or the page's "
                           f"end ({min(new, align_up(old)):#x}), heap.write(old, bytes(n))")


# ---------------------------------------------------------------- step 4
class Spy:
    """Which of heap.unmap / heap.flush the student's code called, in order."""

    def __init__(self, heap: Heap) -> None:
        self.events: list[tuple[str, int]] = []
        unmap, flush = heap.unmap, heap.flush

        def spy_unmap(virt: int) -> None:
            self.events.append(("unmap", virt))
            unmap(virt)

        def spy_flush() -> None:
            self.events.append(("flush", 0))
            flush()
        heap.unmap = spy_unmap  # type: ignore[method-assign]
        heap.flush = spy_flush  # type: ignore[method-assign]

    def flushed_after_unmaps(self) -> bool:
        last_unmap = max((i for i, (k, _) in enumerate(self.events) if k == "unmap"),
                         default=-1)
        return any(k == "flush" for k, _ in self.events[last_unmap + 1:])


def check_shrink(ctx: CheckContext) -> None:
    with tested(ctx) as t:
        assert t.kernel.pd is not None
        pd, b0 = t.kernel.pd, t.heap.brk
        t.call(b0 + 10 * PAGE_SIZE)
        kept = b0 + PAGE_SIZE + 1
        t.write(b0, b"\xcd" * (kept - b0))
        spy = Spy(t.heap)
        before = t.space()
        got = t.call(kept)
        expect_return(kept, got, b0 + 10 * PAGE_SIZE, "a call that moves the break "
                                                        "returns the previous one")
        expect_break(t, kept, kept, "nbrk sets heap.brk = new_break when it succeeds")
        expect_pages_below(t, b0, kept, b0 + 12 * PAGE_SIZE)
        if pd.read_user(b0, kept - b0) != b"\xcd" * (kept - b0):
            raise fail(f"the heap below the new break {kept:#x} to keep the program's bytes",
                       "some changed", "a shrink gives back only the pages above the break")
        freed = t.free - before.free
        if freed != 8:
            raise fail(f"the 8 frames of pages {b0 + 2 * PAGE_SIZE:#x}..{b0 + 9 * PAGE_SIZE:#x}"
                       f" back in the allocator", f"{freed} frames given back",
                       "heap.unmap(page) removes a mapping and gives its frame back: each "
                       "page given up by the heap, once")
        if not spy.flushed_after_unmaps():
            raise fail("heap.flush() after the pages are unmapped",
                       "no flush after the last heap.unmap"
                       if spy.events else "no heap.unmap or heap.flush at all",
                       "the CPU caches translations in its TLB: until it forgets them "
                       "(a flush, as a CR3 reload does), a program can still reach the "
                       "frames given back, which kalloc hands out again to others")
        # A grow across page tables and a shrink back: as it was.
        before = t.space()
        far = 2 * TABLE_SPAN + PAGE_SIZE
        t.call(far)
        t.call(kept)
        diff = changes(before, t.space())
        if diff:
            raise fail(f"nbrk({far:#x}) then nbrk({kept:#x}) to leave the address space as it "
                       f"was", "; ".join(diff),
                       "the grow made page tables for 0x400000..0xbfffff; once no page in "
                       "them is mapped, heap.free_empty_tables(start, end) gives them back "
                       "(PDE cleared, frame free): a grow and a shrink leave the free-frame "
                       "count as it was")
        t.call(b0)
        expect_pages_below(t, b0, b0, b0 + 12 * PAGE_SIZE)


# --------------------------------------------------------------- the CPU
def check_probe(ctx: CheckContext) -> None:
    _data, want, got = kit.both_runs("nbrk_probe", own_parts(ctx.student))
    if kit.ran_alike(got, want):
        return
    lines = got.output.decode("latin-1").splitlines()
    failed = [line for line in lines if line.endswith("FAILED")]
    why = []
    if failed:
        rules = {"aligned": "the initial break is on a page boundary (the kernel sets it)",
                 "reject": "step 1: below the initial break and above USER_BREAK_LIMIT "
                           "return 0, and the break stays",
                 "grow": "step 2: the return value, the break, new pages read zero",
                 "shrink": "the return value and the break",
                 "zero after shrink and grow": "step 3: the tail of the page a shrink kept",
                 "oom rollback": "a grow to 0xbffff000 runs out of frames at 16 MiB: it "
                                 "returns 0 and the break stays",
                 "grow after oom": "after a failed grow the heap still works, and new "
                                   "memory reads zero"}
        why.append("nbrk_probe's rules that failed: " + "; ".join(
            f"{line} ({rules.get(line.rsplit(' ', 1)[0], '')})" for line in failed))
    wf, gf = want.fault, got.fault
    if wf is not None and wf.vector == 14 and (gf is None or (gf.vector, gf.cr2) != (14, wf.cr2)):
        why.append(f"pynova's run faults reading {wf.cr2:#x}, a page nbrk gave back; "
                   f"in your run the CPU read it: the page is still mapped, or the CPU "
                   f"still holds its translation in the TLB (after unmapping, shrink must "
                   f"heap.flush(); a stale translation also shows a page the old frame's "
                   f"bytes after it is mapped again)")
    if gf is not None and gf.vector == 14 and gf != wf:
        why.append(kit.fault_story(gf, got.walk))
    raise fail(kit.run_text(want, "nbrk_probe"), kit.run_text(got, "nbrk_probe"),
               "; ".join(why) or "nbrk_probe printed something else")


# ------------------------------------------------------------ out of memory
def check_oom(ctx: CheckContext) -> None:
    with tested(ctx) as t:
        assert t.kernel.pd is not None and t.kernel.kalloc is not None
        b0 = t.heap.brk
        t.call(b0 + 3 * PAGE_SIZE + 7)
        t.write(b0, b"heap")
        failed_grow(t, b0 + (64 << 20), "64 MiB more than the 16 MiB machine has")
        failed_grow(t, USER_BREAK_LIMIT, "3 GiB: the frames run out after a few thousand "
                                         "pages")
        after_oom(t)
        # The frames run out right at a new page table: the data frame of
        # page 0x400000 is there, the table is not (1 frame left), or the
        # next page's frame is not (2 frames left).
        t.call(TABLE_SPAN)
        kalloc = t.kernel.kalloc
        for left in (1, 2):
            drained = [kalloc.alloc() for _ in range(kalloc.free_count - left)]
            failed_grow(t, TABLE_SPAN + 2 * PAGE_SIZE,
                        f"{left} frame{'s' if left > 1 else ''} left: page 0x400000 needs "
                        f"a new page table" + (" and page 0x401000 a frame" if left > 1
                                               else ""))
            for frame in drained:
                kalloc.free(frame)
        after_oom(t)


def failed_grow(t: Tested, new: int, what: str) -> None:
    before = t.space()
    got = t.call(new)
    why = ("a grow that runs out of frames must leave the address space exactly as it "
           "was: give back the frame that could not be mapped, unmap every page this call "
           "mapped (their frames back), free the page tables it made, keep the break, and "
           "return 0")
    if got != 0:
        raise fail(f"nbrk({new:#x}) to return 0: {what}", f"{got:#x}", why)
    diff = changes(before, t.space())
    if diff:
        raise fail(f"nbrk({new:#x}) ({what}) to return 0 and change nothing",
                   "it returned 0, but " + "; ".join(diff), why)


def after_oom(t: Tested) -> None:
    """After a failed grow the heap works as before."""
    assert t.kernel.pd is not None
    old = t.heap.brk
    got = t.call(old + PAGE_SIZE)
    expect_return(old + PAGE_SIZE, got, old, "after a failed grow the heap must work "
                                                "as before")
    expect_zero(t, range(align_up(old), align_up(old + PAGE_SIZE), PAGE_SIZE))
    t.call(old)


# ------------------------------------------------------------------ fuzz
def arguments(rng: random.Random, brk: int, initial: int) -> int:
    """One argument for nbrk: mostly near the break and the bounds, now
    and then anything, a huge grow, or a question."""
    kind = rng.randrange(100)
    if kind < 10:
        return 0
    if kind < 40:
        return max(0, brk + rng.randrange(-3 * PAGE_SIZE, 3 * PAGE_SIZE)) & 0xFFFFFFFF
    if kind < 55:
        return max(0, align_down(brk) + rng.randrange(-4, 5) * PAGE_SIZE + rng.choice(
            (-1, 0, 1))) & 0xFFFFFFFF
    if kind < 65:
        return (initial + rng.randrange(-2, 3)) & 0xFFFFFFFF
    if kind < 75:
        return rng.choice((USER_BREAK_LIMIT - 1, USER_BREAK_LIMIT, USER_BREAK_LIMIT + 1,
                           USER_END - 1, USER_END, USER_END + 1, 0xFFFFFFFF, 0xFFFFF000, 1))
    if kind < 95:   # up to 512 pages: with FUZZ_FREE frames free, often too many
        return (initial + rng.randrange(0, 2 << 20)) & 0xFFFFFFFF
    return rng.randrange(1 << 32)


class Model:
    """What nbrk must do, in numbers: the break, the mapped user pages,
    the present page tables and the free frames (docs/ABI.md's rules;
    a grow needs a frame per new page and per new page table)."""

    def __init__(self, t: Tested) -> None:
        s = t.space()
        self.initial = t.heap.initial_break
        self.brk = s.brk
        self.free = s.free
        self.pages = set(s.pages())
        self.tables = {i for i, pde in enumerate(s.pdes) if pde & PRESENT}

    def call(self, arg: int) -> int:
        if arg == 0:
            return self.brk
        if not self.initial <= arg <= USER_BREAK_LIMIT:
            return 0
        old = self.brk
        start, end = align_up(old), align_up(arg)
        if end > start:
            new = range(start, end, PAGE_SIZE)
            tables = set(range(start >> 22, ((end - 1) >> 22) + 1)) - self.tables
            if self.free < len(new) + len(tables):
                return 0
            self.pages.update(new)
            self.tables |= tables
            self.free -= len(new) + len(tables)
        elif end < start:
            gone = range(end, start, PAGE_SIZE)
            self.pages.difference_update(gone)
            self.free += len(gone)
            for i in range(end >> 22, ((start - 1) >> 22) + 1):
                if not any(page >> 22 == i for page in self.pages):
                    self.tables.discard(i)
                    self.free += 1
        self.brk = arg
        return old

    def differences(self, t: Tested) -> list[str]:
        """How the student's address space differs from the model's."""
        s = t.space()
        out = []
        if s.brk != self.brk:
            out.append(f"the break is {_num(s.brk)}, not {self.brk:#x}")
        if s.free != self.free:
            out.append(f"{s.free} frames are free, not {self.free} ("
                       + (f"{_frames(self.free - s.free)} not given back" if s.free < self.free
                          else f"{_frames(s.free - self.free)} too many given back") + ")")
        pages = s.pages()
        extra = sorted(set(pages) - self.pages)
        missing = sorted(self.pages - set(pages))
        if extra:
            out.append(f"{span_text(extra)} mapped that no byte below the break needs")
        if missing:
            out.append(f"{span_text(missing)} below the break not mapped")
        wrong = sorted(v for v in set(pages) & self.pages
                       if v >= self.initial and pages[v] & HEAP_ATTR != HEAP_ATTR)
        if wrong:
            out.append(f"{span_text(wrong)} mapped without P RW US")
        tables = {i for i, pde in enumerate(s.pdes) if pde & PRESENT}
        for i in sorted(tables - self.tables):
            out.append(f"PDE[{i}] still has a page table that maps nothing")
        for i in sorted(self.tables - tables):
            out.append(f"PDE[{i}] has no page table")
        return out


def check_fuzz(ctx: CheckContext) -> None:
    rng = random.Random(FUZZ_SEED)
    with tested(ctx) as t:
        assert t.kernel.pd is not None and t.kernel.kalloc is not None
        kalloc = t.kernel.kalloc
        for _ in range(kalloc.free_count - FUZZ_FREE):   # the machine is nearly full
            kalloc.alloc()
        pd, model = t.kernel.pd, Model(t)
        for n in range(FUZZ_CALLS):
            old = model.brk
            arg = arguments(rng, old, model.initial)
            want = model.call(arg)
            got = t.call(arg)
            problems = [f"it returned {got:#x}"] if got != want else []
            if t.heap.brk != model.brk or t.free != model.free or n % 50 == 49:
                problems += model.differences(t)
            if not problems and want and arg > old and pd.read_user(old, arg - old).count(0) \
                    != arg - old:
                problems.append(f"memory between the old break {old:#x} and the new one "
                                f"is not zero")
            if problems:
                raise fail(f"after {n} call{'' if n == 1 else 's'}, with the break at "
                           f"{old:#x}: nbrk({arg:#x}) to return {want:#x}, leaving the break "
                           f"at {model.brk:#x} and {model.free} frames free",
                           "; ".join(problems) + f" ({t.history()})",
                           _fuzz_why(model, arg, old, want))
            if want and arg > model.initial:    # the program writes its heap's last byte
                t.write(arg - 1, b"\x5a")
        problems = model.differences(t)
        if problems:
            raise fail(f"after {FUZZ_CALLS} calls, the break at {model.brk:#x}, exactly the "
                       f"pages below it mapped, and {model.free} frames free",
                       "; ".join(problems) + f" ({t.history()})",
                       "every call leaves the pages [initial break, align_up(break)) mapped "
                       "and nothing else; page tables left empty are given back")


def _fuzz_why(model: Model, arg: int, old: int, want: int) -> str:
    if arg == 0:
        return "0 only asks: return heap.brk"
    if not model.initial <= arg <= USER_BREAK_LIMIT:
        return (f"{arg:#x} is out of bounds (below the initial break {model.initial:#x} or "
                f"above USER_BREAK_LIMIT {USER_BREAK_LIMIT:#x}): return 0, change nothing; "
                + ANY_ARGUMENT)
    if want == 0:
        return ("this grow needs more frames than are free at 16 MiB: return 0 and leave "
                "everything as it was (every page and page table this call made given back)")
    if arg < old:
        return ("a shrink unmaps the pages from align_up(new_break) up to align_up(old) and "
                "gives their frames, and the page tables left empty, back")
    return ("a grow maps the pages from align_up(old) up to align_up(new_break), each a new "
            "zeroed frame (and a page table where there is none), and clears the rest of the "
            "old break's page")


# ----------------------------------------------------------------- lab
def kernel_options(student: Student) -> dict[str, object]:
    return {"parts": own_parts(student), "poison_frames": True}


def prepare() -> None:
    build(PROGRAMS)


README = """\
The course's lab 10: the `nbrk` system call (AL=3, ESI=address), the
kernel side of a program's heap. The heap is [initial break, break): the
kernel maps every page that holds a byte of it. Your `nbrk(heap,
new_break)`:

1. answers `nbrk(0)` with the break, and refuses (returns 0, changes
   nothing) a break below the initial break or above USER_BREAK_LIMIT
   (0xBFFFF000);
2. grows: maps every new page with a fresh frame that reads as zero, with
   PRESENT | RW | USER; when the frames run out, it undoes everything it
   did (the frames, the page tables) and returns 0;
3. clears what is left of the old break's page: memory between the old
   and the new break always reads as zero;
4. shrinks: unmaps the pages above the new break, gives their frames and
   page tables left empty back, and flushes the TLB (touching them
   faults).

A call that moves the break returns the previous one. `heap` is what you
work with: `heap.brk`, `heap.initial_break`, `heap.alloc_zeroed_frame()`,
`heap.insert_mapping(page, frame, attr)`, `heap.unmap(page)`,
`heap.free_frame(frame)`, `heap.free_empty_tables(start, end)`,
`heap.flush()`, `heap.write(virt, data)`. The checks call your nbrk on a
16 MiB machine (the course's size: the frames run out) whose frames come
full of junk, read the page tables back from guest RAM, run `nbrk_probe`
on it and compare 400 calls with any argument with pynova's own.
More: docs/labs/brk.md in pynova's sources.
"""

LAB = Lab(
    name="brk",
    title="the heap: the nbrk system call",
    summary="grow with zeroed pages, shrink and give back, survive out of memory",
    files=(WorkspaceFile(STUDENT_FILE, "kernel/heap.py"),),
    readme=README,
    checks=(
        Check(ASKS, 1, check_asks, timeout=2.0),
        Check(GROW, 2, check_grow, timeout=2.0),
        Check(EDGES, 1, check_edges, needs=(GROW,), timeout=2.0),
        Check(ZERO, 1, check_zero, needs=(GROW,), timeout=2.0),
        Check(SHRINK, 2, check_shrink, needs=(GROW,), timeout=2.0),
        Check(PROBE, 1, check_probe, needs=(ASKS, GROW, ZERO, SHRINK), timeout=2.0),
        Check(OOM, 2, check_oom, needs=(GROW, SHRINK), timeout=2.0),
        Check(FUZZ, 2, check_fuzz, needs=(ASKS, GROW, ZERO, SHRINK, OOM), timeout=2.0),
    ),
    parts=("nbrk",),
    kernel_options=kernel_options,
    prepare=prepare,
    limits=kit.RUN_LIMITS,
    try_program="example:nbrk_probe",
)
