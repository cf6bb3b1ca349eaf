"""heap: the nbrk system call (call 3) on a Pd.

The break moves within [initial break, USER_BREAK_LIMIT]. Growing maps fresh
zeroed pages; shrinking unmaps the pages wholly above the new break, gives
their frames (and page tables left empty) back to kalloc and flushes the
TLB. A grow that runs out of frames undoes itself completely.
"""

from __future__ import annotations

from pynova.kernel.kalloc import OutOfMemory
from pynova.kernel.layout import PAGE_MASK, PAGE_SIZE, USER_BREAK_LIMIT, align_up
from pynova.kernel.pd import Pd
from pynova.kernel.ptab import PRESENT, RW, USER

HEAP_ATTR = PRESENT | RW | USER
TABLE_SPAN = 1 << 22          # bytes mapped by one page table
FAILED = 0


def nbrk(pd: Pd, new_break: int) -> int:
    """The call's semantics (docs/ABI.md): 0 asks; a valid address moves
    the break and returns the previous one; anything else returns 0."""
    if new_break == 0:
        return pd.brk
    if not pd.initial_break <= new_break <= USER_BREAK_LIMIT:
        return FAILED
    old = pd.brk
    start, end = align_up(old), align_up(new_break)
    if end > start and not _map_range(pd, start, end):
        return FAILED
    if end < start:
        _unmap_range(pd, end, start)
    if new_break > old:
        _zero_tail(pd, old, new_break)
    pd.brk = new_break
    return old


def _map_range(pd: Pd, start: int, end: int) -> bool:
    """Map [start, end) with fresh pages; on running out of frames undo
    every page and page table this call added and return False."""
    page = start
    try:
        while page < end:
            _map_one(pd, page)
            page += PAGE_SIZE
    except OutOfMemory:
        _unmap_range(pd, start, page)
        return False
    return True


def _map_one(pd: Pd, page: int) -> None:
    # Not Pd.map_fresh: when the page table cannot be allocated, the data
    # frame must go back to kalloc instead of staying in pd.owned.
    frame = pd.kalloc.alloc()
    try:
        pd.ptab.insert_mapping(page, frame, HEAP_ATTR)
    except OutOfMemory:
        pd.kalloc.free(frame)
        raise
    pd.owned.add(frame)


def _unmap_range(pd: Pd, start: int, end: int) -> None:
    for page in range(start, end, PAGE_SIZE):
        pd.unmap(page)
    _free_empty_tables(pd, start, end)
    pd.ptab.flush()


def _free_empty_tables(pd: Pd, start: int, end: int) -> None:
    """Give back page tables in [start, end) that map nothing any more, so
    a grow followed by a shrink leaves the free-frame count unchanged."""
    memory = pd.memory
    for base in range(start & ~(TABLE_SPAN - 1), end, TABLE_SPAN):
        walk = pd.ptab.walk(base)
        if not walk.pde & PRESENT:
            continue
        table = walk.pde & PAGE_MASK
        if memory.read(table, PAGE_SIZE).count(0) == PAGE_SIZE:
            memory.w32(walk.pde_addr, 0)
            pd.kalloc.free(table)


def _zero_tail(pd: Pd, old: int, new_break: int) -> None:
    """Zero what is left of the old break's page: a shrink within a page
    keeps that page mapped with whatever the program wrote there."""
    if old % PAGE_SIZE:
        pd.write_user(old, bytes(min(new_break, align_up(old)) - old))
