"""heap: the nbrk system call (call 3), pynova's own nbrk part and the
solution of lab brk (the course's lab 10).

The region below is what a student's workspace holds (``pynova lab start
brk DIR``). The kernel calls ``nbrk`` through its Parts (parts.py) with
the task's ``Heap`` (pd.py). The break moves within [initial break,
USER_BREAK_LIMIT]. Growing maps fresh zeroed pages; shrinking unmaps the
pages wholly above the new break, gives their frames (and page tables
left empty) back and flushes the TLB. A grow that runs out of frames
undoes itself completely, so that the address space is exactly as it was.
"""

# lab brk: begin
from __future__ import annotations

from pynova.kernel.kalloc import OutOfMemory
from pynova.kernel.layout import PAGE_SIZE, USER_BREAK_LIMIT, align_up
from pynova.kernel.pd import Heap
from pynova.kernel.ptab import PRESENT, RW, USER

#: The rights of a heap page: the program reads and writes it.
HEAP_ATTR = PRESENT | RW | USER
#: What nbrk returns when it cannot do what it was asked.
FAILED = 0


def nbrk(heap: Heap, new_break: int) -> int:
    """The call's semantics (docs/ABI.md): 0 asks for the break; an
    address in [heap.initial_break, USER_BREAK_LIMIT] moves the break
    there and returns the previous one; anything else returns 0 and
    changes nothing.

    The heap is [heap.initial_break, heap.brk): every page that holds a
    byte of it is mapped, the pages above are not. ``new_break`` is any
    32-bit number a program put into esi.
    """
    # TODO(step 1): answer a question, and refuse an address out of bounds.
    #   nbrk(0) only asks: return the break, heap.brk. A break below the
    #   initial break (heap.initial_break: the program's own data lies
    #   there) or above USER_BREAK_LIMIT (0xBFFFF000: above it lie the
    #   last user page and the kernel) is refused: return FAILED (0) and
    #   change nothing.
    # solution begin
    if new_break == 0:
        return heap.brk
    if not heap.initial_break <= new_break <= USER_BREAK_LIMIT:
        return FAILED
    # solution end
    old = heap.brk
    if new_break > old and not grow(heap, old, new_break):
        return FAILED
    if new_break < old:
        shrink(heap, new_break, old)
    if new_break > old:
        zero_tail(heap, old, new_break)
    heap.brk = new_break
    return old


def grow(heap: Heap, old: int, new_break: int) -> bool:
    """Map the pages the heap needs to grow from ``old`` to ``new_break``;
    False when the frames ran out, with every page this call mapped
    unmapped again."""
    # TODO(step 2): map every page that holds a byte of [old, new_break) and is not mapped yet.
    #   The pages of [initial break, old) are mapped already, up to the one
    #   holding old - 1. Map each page from align_up(old) up to (and not
    #   including) align_up(new_break) with a fresh frame that reads as
    #   zero: heap.alloc_zeroed_frame() gives one (heap.alloc_frame() one
    #   with whatever its last user left in it), and heap.insert_mapping(
    #   page, frame, HEAP_ATTR) maps it, a new page table included when the
    #   page needs one.
    #   Either raises OutOfMemory when no frame is left. The address space
    #   must then be exactly as it was: give back the frame that could not
    #   be mapped (heap.free_frame(frame)), unmap the pages this call
    #   mapped so far (shrink(heap, old, page) does that, and frees the
    #   page tables they needed) and return False. Return True when every
    #   page is mapped.
    # solution begin
    page, end = align_up(old), align_up(new_break)
    try:
        while page < end:
            frame = heap.alloc_zeroed_frame()
            try:
                heap.insert_mapping(page, frame, HEAP_ATTR)
            except OutOfMemory:  # no frame for the page table: this frame goes back too
                heap.free_frame(frame)
                raise
            page += PAGE_SIZE
    except OutOfMemory:
        shrink(heap, old, page)
        return False
    return True
    # solution end


def zero_tail(heap: Heap, old: int, new_break: int) -> None:
    """Memory between the old and the new break must read as zero."""
    # TODO(step 3): clear what is left of the old break's page.
    #   The pages grow maps are zero, but the page that holds the old
    #   break was mapped before: a shrink within a page keeps the page,
    #   with whatever the program wrote above the break. Clear its bytes
    #   from old up to the new break or the page's end, whichever comes
    #   first, with heap.write(old, bytes(n)). (Nothing to do when old is
    #   page aligned.)
    # solution begin: pass
    if old % PAGE_SIZE:
        heap.write(old, bytes(min(new_break, align_up(old)) - old))
    # solution end


def shrink(heap: Heap, new_break: int, old: int) -> None:
    """Unmap the pages the heap no longer needs when it shrinks from
    ``old`` to ``new_break``, and give them back."""
    # TODO(step 4): unmap every page that holds no byte below new_break any more.
    #   Those are the pages from align_up(new_break) up to align_up(old):
    #   the page holding new_break - 1 stays. heap.unmap(page) removes a
    #   mapping and gives its frame back. Then heap.free_empty_tables(
    #   start, end) gives back the page tables of that range that map
    #   nothing any more (so that a grow and a shrink leave the free-frame
    #   count as it was), and heap.flush() makes the CPU forget the
    #   translations it has cached in its TLB: a program that touches a
    #   page given back must fault.
    # solution begin
    start, end = align_up(new_break), align_up(old)
    if start >= end:
        return
    for page in range(start, end, PAGE_SIZE):
        heap.unmap(page)
    heap.free_empty_tables(start, end)
    heap.flush()
    # solution end
# lab brk: end
