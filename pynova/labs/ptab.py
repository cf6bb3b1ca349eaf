"""Lab ptab: Ptab::insert_mapping, the 10-10-12 walk of 32-bit paging
(docs/labs/ptab.md).

The student's file is the marked region of pynova/kernel/insert_mapping.py;
the kernel calls the student's ``insert_mapping`` through its Parts for
every page it maps (the loader's, the stack's, the heap's). The checks read
the entries back from guest RAM after single mappings, a new page table,
mappings across page-table boundaries and mixed rights, then run user
programs whose pages the student's code mapped, and see the CPU enforce
the rights.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pynova.kernel.kalloc import JUNK
from pynova.kernel.kernel import Kernel
from pynova.kernel.layout import PAGE_MASK, PAGE_SIZE
from pynova.kernel.parts import PYNOVA, Parts
from pynova.kernel.pd import Pd
from pynova.kernel.ptab import PRESENT, RW, USER, Ptab, Walk
from pynova.labs import kit
from pynova.labs.kit import entry_text, flags, function, program
from pynova.labs.lab import Check, CheckContext, Lab, Student, WorkspaceFile, fail
from pynova.labs.programs import build

STUDENT_FILE = "ptab_lab.py"
PROGRAMS = ("hello", "textwrite", "user_probe")
USER_PAGE = PRESENT | USER
USER_RW = PRESENT | RW | USER
ATTRS = PRESENT | RW | USER
JUNK_WORD = JUNK * 0x01010101   # a word of a frame filled with kalloc's junk
#: Where user_probe reads; the check maps it without USER.
PROBE = 0x10000000

SINGLE = "single mappings: the PDE and PTE read back"
ZEROED = "a new page table reads as zero"
MANY = "many pages across page-table boundaries"
RIGHTS = "the directory entry's rights"
HELLO = "user programs run: hello prints Hello world!"
READ_ONLY = "the CPU enforces the rights: a store into the code faults"
NO_USER = "the CPU enforces the rights: a page without USER"


def own_parts(student: Student) -> Parts:
    return PYNOVA._replace(insert_mapping=function(student, "insert_mapping"))


@contextmanager
def page_tables(ctx: CheckContext) -> Iterator[tuple[Kernel, Pd]]:
    """A booted kernel with the student's insert_mapping and a new, empty
    address space (its frames come with junk in them)."""
    with kit.booted(program("hello"), "hello", parts=own_parts(ctx.student)) as kernel:
        yield kernel, kernel.new_pd()


# ------------------------------------------------------------ entries
def check_single(ctx: CheckContext) -> None:
    with page_tables(ctx) as (kernel, pd):
        for virt, attr in ((0x00003000, USER_PAGE), (0x00405000, USER_RW),
                           (0xBFFFF000, USER_RW)):
            assert kernel.kalloc is not None
            frame = kernel.kalloc.alloc()
            before = kernel.memory.read(pd.ptab.root, PAGE_SIZE)
            pd.ptab.insert_mapping(virt, frame, attr)
            _expect_entries(kernel, pd.ptab, before, virt, frame, attr)


def _expect_entries(kernel: Kernel, ptab: Ptab, before: bytes, virt: int, frame: int,
                    attr: int) -> None:
    """The PDE and the PTE of ``virt`` after insert_mapping(virt, frame, attr)."""
    i, j = virt >> 22, (virt >> 12) & 0x3FF
    walk = ptab.walk(virt)
    if not walk.pde & PRESENT:
        wrote = _changed_entries(before, kernel.memory.read(ptab.root, PAGE_SIZE))
        got = f"PDE[{i}] = {entry_text(walk.pde)}"
        if wrote:
            got += "; your code wrote " + ", ".join(f"PDE[{n}]" for n in wrote)
        why = f"bits 31..22 of {virt:#x} select the directory entry: {virt:#x} >> 22 = {i}"
        if wrote:
            why += _index_formula(virt, wrote[0], 22)
        raise fail(f"insert_mapping({virt:#x}, {frame:#x}, {flags(attr)}) to make PDE[{i}] "
                   f"(at {walk.pde_addr:#x}) present", got, why)
    want = frame | attr
    if walk.pte != want:
        table = walk.pde & PAGE_MASK
        found = _find_word(kernel, table, want)
        got = f"PTE[{j}] at {walk.pte_addr:#x} = {entry_text(walk.pte)}"
        if found is not None and found != walk.pte_addr:
            got += f"; {want:#010x} is at {found:#x}"
            why = (f"bits 21..12 of {virt:#x} select the entry in the page table: "
                   f"({virt:#x} >> 12) & 0x3FF = {j}, at table + {j * 4:#x}")
            if table <= found < table + PAGE_SIZE:
                why += _index_formula(virt, (found - table) // 4, 12)
        else:
            why = ("the PTE holds the frame's address in bits 31..12 and attr in bits "
                   "11..0: phys | attr")
        raise fail(f"PTE[{j}] of PDE[{i}]'s table = {entry_text(want)}", got, why)


def _changed_entries(before: bytes, after: bytes) -> list[int]:
    old, new = struct.unpack("<1024I", before), struct.unpack("<1024I", after)
    return [n for n in range(1024) if old[n] != new[n]]


def _index_formula(virt: int, index: int, shift: int) -> str:
    """What the wrong index the student's code used looks like."""
    for name, value in ((f"{virt:#x} >> {shift}", virt >> shift),
                        *((f"({virt:#x} >> {s}) & 0x3FF", (virt >> s) & 0x3FF)
                          for s in (10, 12, 20, 21, 22, 23))):
        if value == index and name != f"{virt:#x} >> 22":
            return f"; entry {index} is {name}: other bits of the address"
    return f"; entry {index} comes from other bits of the address"


def _find_word(kernel: Kernel, near: int, word: int) -> int | None:
    """Where ``word`` lies in RAM, the page at ``near`` searched first."""
    packed = struct.pack("<I", word)
    page = kernel.memory.read(near, PAGE_SIZE)
    at = page.find(packed)
    while at >= 0 and at % 4:
        at = page.find(packed, at + 1)
    if at >= 0:
        return near + at
    ram = kernel.memory.read(0, kernel.memory.size)
    at = ram.find(packed)
    while at >= 0 and at % 4:
        at = ram.find(packed, at + 1)
    return at if at >= 0 else None


def check_zeroed(ctx: CheckContext) -> None:
    with page_tables(ctx) as (kernel, pd):
        virt = 0x00800000
        assert kernel.kalloc is not None
        frame = kernel.kalloc.alloc()
        before = kernel.memory.read(pd.ptab.root, PAGE_SIZE)
        pd.ptab.insert_mapping(virt, frame, USER_RW)
        _expect_entries(kernel, pd.ptab, before, virt, frame, USER_RW)
        table = pd.ptab.walk(virt).pde & PAGE_MASK
        entries = struct.unpack("<1024I", kernel.memory.read(table, PAGE_SIZE))
        junk = [n for n in range(1, 1024) if entries[n]]
        if junk:
            n = junk[0]
            raise fail(f"the new page table at {table:#x} to hold one entry, PTE[0] for "
                       f"{virt:#x}: the other 1023 zero (not present)",
                       f"{len(junk)} other entries are not zero; PTE[{n}] = "
                       f"{entry_text(entries[n])}",
                       f"the MMU reads every entry of a page table: it would take PTE[{n}] as "
                       f"a mapping of {virt + n * PAGE_SIZE:#x} to frame "
                       f"{entries[n] & PAGE_MASK:#x}. A frame from pt.alloc_frame() holds "
                       f"what its last user left (in a lab, kalloc fills frames with 0x01 "
                       f"bytes, as xv6's kfree does): clear a new page table, or take "
                       f"pt.alloc_zeroed_frame()")


def check_many(ctx: CheckContext) -> None:
    with page_tables(ctx) as (kernel, pd):
        assert kernel.kalloc is not None
        first, count = 0x003FE000, 1030      # pages in three page tables (PDE 0, 1, 2)
        frames = [0x00200000 + n * PAGE_SIZE for n in range(count)]
        free = kernel.kalloc.free_count
        for n, frame in enumerate(frames):
            pd.ptab.insert_mapping(first + n * PAGE_SIZE, frame, USER_RW if n % 2 else USER_PAGE)
        tables = free - kernel.kalloc.free_count
        span = f"pages {first:#x}..{first + count * PAGE_SIZE:#x}"
        if tables >= count:
            raise fail(f"3 new page tables for the {count} {span}",
                       f"{tables} frames taken: a new table for every page",
                       "a page table is made only when the PDE is not present yet; the "
                       "other pages of its 4 MiB go into the table the PDE points to (a new "
                       "table in its place loses the mappings of the old one)")
        for n, frame in enumerate(frames):
            virt = first + n * PAGE_SIZE
            attr = USER_RW if n % 2 else USER_PAGE
            walk = pd.ptab.walk(virt)
            if walk.phys != frame or walk.pte & 0xFFF != attr:
                got = f"PDE[{virt >> 22}] = {entry_text(walk.pde)}"
                if walk.pde & PRESENT:
                    got += f", PTE[{(virt >> 12) & 0x3FF}] = {entry_text(walk.pte)}"
                raise fail(f"page {virt:#x} (number {n} of the {count} {span}) on frame "
                           f"{frame:#x} with {flags(attr)}", got,
                           f"the PDE of {virt:#x} is entry {virt >> 22} of the directory "
                           f"(bits 31..22), its PTE entry {(virt >> 12) & 0x3FF} of that "
                           f"PDE's table (bits 21..12): each 4 MiB has a page table of its own")
        if tables != 3:
            raise fail(f"3 new page tables for the {count} {span}", f"{tables} frames taken",
                       "a page table is made only when the PDE is not present yet")


def check_rights(ctx: CheckContext) -> None:
    with page_tables(ctx) as (kernel, pd):
        assert kernel.kalloc is not None
        cases = (  # (page, attr) pairs mapped in order into one table each
            ((0x10000000, USER_PAGE), (0x10001000, USER_RW)),
            ((0x10400000, USER_RW), (0x10401000, USER_PAGE)),
            ((0x10800000, PRESENT | RW), (0x10801000, USER_RW)),
        )
        for case in cases:
            for virt, attr in case:
                pd.ptab.insert_mapping(virt, kernel.kalloc.alloc(), attr)
            for virt, attr in case:
                walk = pd.ptab.walk(virt)
                if walk.attr != attr:
                    order = " then ".join(f"{v:#x} with {flags(a)}" for v, a in case)
                    raise fail(f"the CPU to allow {flags(attr)} on {virt:#x}, after "
                               f"mapping {order}",
                               f"PDE {entry_text(walk.pde)}, PTE {entry_text(walk.pte)}: it "
                               f"allows {flags(walk.attr)}", _rights_why(walk, virt, attr))


def _rights_why(walk: Walk, virt: int, attr: int) -> str:
    if walk.pde & PRESENT and not walk.pte & PRESENT:
        return (f"the mapping of {virt:#x} is gone: the next insert_mapping into the same 4 "
                f"MiB gave its PDE a new page table instead of using the one it pointed to")
    if walk.pte & ATTRS != attr:
        return (f"insert_mapping was asked for {flags(attr)}: the PTE is phys | attr, "
                f"its rights exactly those the page was given")
    hardware = kit.would_fault(walk, virt, write=bool(attr & RW)) if attr & USER else None
    return ((hardware + "; " if hardware else "")
            + "the PDE must allow what any page of its table needs: OR in each new page's "
              "PRESENT, RW and USER, and never take away what it had")


# ---------------------------------------------------------------- runs
def verify(ctx: CheckContext, name: str, hint: str,
           prepare: Callable[[Kernel], None] | None = None) -> None:
    _data, want, got = kit.both_runs(name, own_parts(ctx.student), prepare)
    if kit.ran_alike(got, want):
        return
    why = [kit.fault_story(got.fault, got.walk)] \
        if got.fault is not None and got.fault != want.fault else []
    if got.walk is not None and JUNK_WORD in (got.walk.pde, got.walk.pte):
        why.append(f"{JUNK_WORD:#010x} is the junk a frame comes with in a lab: a new page "
                   f"table was not cleared, and the kernel took the junk for a mapping")
    else:
        why.append(hint)
    raise fail(kit.run_text(want, name), kit.run_text(got, name), "; ".join(why))


def check_hello(ctx: CheckContext) -> None:
    verify(ctx, "hello", "pynova's own loader maps hello's pages through your insert_mapping")


def check_read_only(ctx: CheckContext) -> None:
    verify(ctx, "textwrite", "the text is mapped PRESENT | USER, without RW: its PTE must "
                             "say so, and the CPU then refuses the store")


def map_probe(kernel: Kernel) -> None:
    """Map user_probe's page for supervisor access only (no USER), after a
    user page in the same page table: only the PTE can refuse the read."""
    assert kernel.pd is not None and kernel.kalloc is not None
    kernel.pd.ptab.insert_mapping(PROBE + PAGE_SIZE, kernel.kalloc.alloc_zeroed(), USER_RW)
    kernel.pd.ptab.insert_mapping(PROBE, kernel.kalloc.alloc_zeroed(), PRESENT | RW)


def check_no_user(ctx: CheckContext) -> None:
    verify(ctx, "user_probe", f"the check maps {PROBE + PAGE_SIZE:#x} for user mode, then "
                              f"{PROBE:#x} with PRESENT | RW and no USER: a ring-3 read of it "
                              f"must fault (error code 0x5, a protection violation), so its "
                              f"PTE must not have USER",
           prepare=map_probe)


# ----------------------------------------------------------------- lab
def kernel_options(student: Student) -> dict[str, object]:
    return {"parts": own_parts(student), "poison_frames": True}


def prepare() -> None:
    build(PROGRAMS)


README = """\
The seed's `Ptab::insert_mapping(virt, phys, attr)`: put one page into a
task's page tables, as the CPU will walk them (Intel SDM vol. 3A, 4.3,
"32-Bit Paging"). A virtual address splits 10-10-12: bits 31..22 index the
page directory, bits 21..12 the page table the directory entry points to,
bits 11..0 the byte in the page. Your `insert_mapping(pt, virt, phys, attr)`:

1. finds the page-directory entry (PDE) of `virt` in the directory at
   `pt.root` (`pt.read(addr)`, `pt.write(addr, value)`: 32-bit words of
   physical memory);
2. makes a new page table when the PDE is not present: a frame that reads
   as zero (`pt.alloc_zeroed_frame()`; `pt.alloc_frame()` gives one with
   whatever its last user left);
3. gives the PDE the rights the page needs (the CPU allows an access only
   when the PDE and the PTE both allow it), keeping those it had;
4. writes the PTE: `phys | attr`.

pynova's own kernel calls it for every page it maps: the program's
segments, the stack, the heap. The checks read your entries back from
guest RAM, then run programs on them and watch the CPU enforce the rights.
More: docs/labs/ptab.md in pynova's sources.
"""

LAB = Lab(
    name="ptab",
    title="page tables: Ptab::insert_mapping",
    summary="the 10-10-12 walk, new page tables, directory entry rights",
    files=(WorkspaceFile(STUDENT_FILE, "kernel/insert_mapping.py"),),
    readme=README,
    checks=(
        Check(SINGLE, 2, check_single, timeout=2.0),
        Check(ZEROED, 2, check_zeroed, timeout=2.0),
        Check(MANY, 2, check_many, timeout=2.0),
        Check(RIGHTS, 2, check_rights, timeout=2.0),
        Check(HELLO, 1, check_hello, needs=(SINGLE, ZEROED, RIGHTS), timeout=2.0),
        Check(READ_ONLY, 1, check_read_only, needs=(HELLO,), timeout=2.0),
        Check(NO_USER, 1, check_no_user, needs=(HELLO,), timeout=2.0),
    ),
    parts=("insert_mapping",),
    kernel_options=kernel_options,
    prepare=prepare,
    limits=kit.RUN_LIMITS,
)
