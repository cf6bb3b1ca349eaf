"""heap: the nbrk system call (call 3), pynova's own nbrk part.

The kernel calls it through its Parts (parts.py) with the task's ``Heap``
(pd.py), so that lab brk's version can stand in for it. The break moves
within [initial break, USER_BREAK_LIMIT]. Growing maps fresh zeroed pages;
shrinking unmaps the pages wholly above the new break, gives their frames
(and page tables left empty) back and flushes the TLB. A grow that runs
out of frames undoes itself completely.
"""

from __future__ import annotations

from pynova.kernel.kalloc import OutOfMemory
from pynova.kernel.layout import PAGE_SIZE, USER_BREAK_LIMIT, align_up
from pynova.kernel.pd import Heap
from pynova.kernel.ptab import PRESENT, RW, USER

HEAP_ATTR = PRESENT | RW | USER
FAILED = 0


def nbrk(heap: Heap, new_break: int) -> int:
    """The call's semantics (docs/ABI.md): 0 asks; a valid address moves
    the break and returns the previous one; anything else returns 0."""
    if new_break == 0:
        return heap.brk
    if not heap.initial_break <= new_break <= USER_BREAK_LIMIT:
        return FAILED
    old = heap.brk
    start, end = align_up(old), align_up(new_break)
    if end > start and not _map_range(heap, start, end):
        return FAILED
    if end < start:
        _unmap_range(heap, end, start)
    if new_break > old:
        _zero_tail(heap, old, new_break)
    heap.brk = new_break
    return old


def _map_range(heap: Heap, start: int, end: int) -> bool:
    """Map [start, end) with fresh pages; on running out of frames undo
    every page and page table this call added and return False."""
    page = start
    try:
        while page < end:
            _map_one(heap, page)
            page += PAGE_SIZE
    except OutOfMemory:
        _unmap_range(heap, start, page)
        return False
    return True


def _map_one(heap: Heap, page: int) -> None:
    frame = heap.alloc_zeroed_frame()
    try:
        heap.insert_mapping(page, frame, HEAP_ATTR)
    except OutOfMemory:  # no frame for the page table: the data frame goes back
        heap.free_frame(frame)
        raise


def _unmap_range(heap: Heap, start: int, end: int) -> None:
    for page in range(start, end, PAGE_SIZE):
        heap.unmap(page)
    # So that a grow followed by a shrink leaves the free-frame count unchanged.
    heap.free_empty_tables(start, end)
    heap.flush()


def _zero_tail(heap: Heap, old: int, new_break: int) -> None:
    """Zero what is left of the old break's page: a shrink within a page
    keeps that page mapped with whatever the program wrote there."""
    if old % PAGE_SIZE:
        heap.write(old, bytes(min(new_break, align_up(old)) - old))
