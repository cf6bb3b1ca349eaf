"""ptab: two-level 32-bit page tables in guest RAM (Intel SDM vol. 3A, 4.3
"32-Bit Paging", Tables 4-4 to 4-6). NOVA's class of the same name.

A virtual address splits into a 10-bit page-directory index, a 10-bit
page-table index and a 12-bit offset. Entries are 32-bit words: the frame
address in bits 31..12, attribute bits below.

``insert_mapping`` itself is a lab part (pynova/kernel/parts.py): pynova's
own is in insert_mapping.py, and it sees the tables through the small
``PageDirectory`` below, so that a student's version can stand in for it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

from pynova.kernel.kalloc import Kalloc
from pynova.kernel.layout import PAGE_MASK, PAGE_SIZE, USER_END
from pynova.machine.memory import PhysicalMemory

PRESENT = 1 << 0
RW = 1 << 1
USER = 1 << 2
ACCESSED = 1 << 5
DIRTY = 1 << 6
LARGE = 1 << 7     # PDE.PS: a 4 MiB page (needs CR4.PSE)
GLOBAL = 1 << 8
ATTR_MASK = 0xFFF
KERNEL_PDE_FIRST = USER_END >> 22   # PDEs 768..1023 map the kernel half


def pd_index(virt: int) -> int:
    return (virt >> 22) & 0x3FF


def pt_index(virt: int) -> int:
    return (virt >> 12) & 0x3FF


class Walk(NamedTuple):
    """What the MMU sees on the way to ``virt``: 0 for an entry not reached."""

    virt: int
    pde_addr: int
    pde: int
    pte_addr: int
    pte: int

    @property
    def present(self) -> bool:
        if not self.pde & PRESENT:
            return False
        return bool(self.pde & LARGE or self.pte & PRESENT)

    @property
    def attr(self) -> int:
        """Effective attributes: a bit counts only if both levels grant it."""
        if not self.present:
            return 0
        if self.pde & LARGE:
            return self.pde & (PRESENT | RW | USER)
        return self.pde & self.pte & (PRESENT | RW | USER)

    @property
    def phys(self) -> int | None:
        if not self.present:
            return None
        if self.pde & LARGE:
            return (self.pde & 0xFFC00000) | (self.virt & 0x3FFFFF)
        return (self.pte & PAGE_MASK) | (self.virt & 0xFFF)


class PageDirectory:
    """What ``insert_mapping`` works with (``pt`` in lab ptab): where the
    page directory is, the physical memory the tables live in (32-bit words:
    the kernel sees all RAM), and free frames for new page tables."""

    __slots__ = ("root", "read", "write", "alloc_frame", "alloc_zeroed_frame")

    root: int                              # the directory's frame: 1024 entries of 4 bytes
    read: Callable[[int], int]             # read(phys): the 32-bit word at phys
    write: Callable[[int, int], None]      # write(phys, value)
    alloc_frame: Callable[[], int]         # a free frame as it is: what its last user left
    alloc_zeroed_frame: Callable[[], int]  # a free frame that reads as zero

    def __init__(self, root: int, memory: PhysicalMemory, kalloc: Kalloc) -> None:
        # Bound methods of the memory and the allocator themselves: no extra
        # call on the way (a loader maps up to all of RAM through here).
        self.root = root
        self.read = memory.r32
        self.write = memory.w32
        self.alloc_frame = kalloc.alloc
        self.alloc_zeroed_frame = kalloc.alloc_zeroed


#: The insert_mapping part: (the directory, virt, phys, attr).
InsertMapping = Callable[[PageDirectory, int, int, int], None]


class Ptab:
    """One page directory and its page tables; all frames come from kalloc.

    ``insert`` is the insert_mapping part; ``bulk`` says it is pynova's own,
    whose entries ``insert_mappings`` may then write a table at a time."""

    def __init__(self, memory: PhysicalMemory, kalloc: Kalloc, kernel_pd: int,
                 invalidate: Callable[[], None], insert: InsertMapping,
                 bulk: bool = False) -> None:
        self._mem = memory
        self._kalloc = kalloc
        self._invalidate = invalidate
        self._insert = insert
        self._bulk = bulk
        self.root = kalloc.alloc_zeroed()
        # Share the kernel half: copy PDEs 768..1023 of the kernel's directory.
        first = KERNEL_PDE_FIRST * 4
        memory.write(self.root + first, memory.read(kernel_pd + first, PAGE_SIZE - first))
        self.directory = PageDirectory(self.root, memory, kalloc)

    def _pde_addr(self, virt: int) -> int:
        return self.root + pd_index(virt) * 4

    def walk(self, virt: int) -> Walk:
        virt &= 0xFFFFFFFF
        pde_addr = self._pde_addr(virt)
        pde = self._mem.r32(pde_addr)
        if not pde & PRESENT or pde & LARGE:
            return Walk(virt, pde_addr, pde, 0, 0)
        pte_addr = (pde & PAGE_MASK) + pt_index(virt) * 4
        return Walk(virt, pde_addr, pde, pte_addr, self._mem.r32(pte_addr))

    def insert_mapping(self, virt: int, phys: int, attr: int) -> None:
        """Map the page at ``virt`` to the frame at ``phys`` with ``attr``
        (the insert_mapping part does it; OutOfMemory when a new page table
        is needed and no frame is free)."""
        if virt >= USER_END or virt % PAGE_SIZE or phys % PAGE_SIZE:
            raise ValueError(f"insert_mapping({virt:#x}, {phys:#x}): not a user page")
        self._insert(self.directory, virt, phys, attr)

    def insert_mappings(self, virt: int, frames: Sequence[int], attr: int) -> None:
        """Map ``len(frames)`` consecutive pages from ``virt`` on, the n-th
        to ``frames[n]``: like insert_mapping on each. With pynova's own
        insert_mapping, one write of the entries per page table (a loader
        maps up to all of RAM); with another, page by page."""
        if not self._bulk:
            for n, frame in enumerate(frames):
                self.insert_mapping(virt + n * PAGE_SIZE, frame, attr)
            return
        done = 0
        while done < len(frames):
            at = virt + done * PAGE_SIZE
            count = min(len(frames) - done, 1024 - pt_index(at))
            chunk = frames[done:done + count]
            if at + count * PAGE_SIZE > USER_END or any(f % PAGE_SIZE for f in chunk):
                raise ValueError(f"insert_mappings({at:#x}, ...): not user pages")
            self.insert_mapping(at, chunk[0], attr)  # the directory entry
            table = self._mem.r32(self._pde_addr(at)) & PAGE_MASK
            entries = struct.pack(f"<{count}I", *(f | (attr & ATTR_MASK) for f in chunk))
            self._mem.write(table + pt_index(at) * 4, entries)
            done += count

    def lookup(self, virt: int) -> tuple[int, int] | None:
        """(frame, attributes of the PTE) of the page at ``virt``, if mapped."""
        w = self.walk(virt)
        if not w.present or w.pde & LARGE:
            return None
        return w.pte & PAGE_MASK, w.pte & ATTR_MASK

    def unmap(self, virt: int) -> int | None:
        """Remove the mapping of the page at ``virt``; return its frame.
        The caller flushes the TLB (``flush``) once after a batch."""
        w = self.walk(virt)
        if not w.present or w.pde & LARGE:
            return None
        self._mem.w32(w.pte_addr, 0)
        return w.pte & PAGE_MASK

    def flush(self) -> None:
        """Make the CPU forget stale translations (a CR3 reload's effect)."""
        self._invalidate()

    def user_mappings(self) -> Iterator[tuple[int, int]]:
        """(virtual page, PTE) of every present user-half page, in order."""
        mem = self._mem
        for i in range(KERNEL_PDE_FIRST):
            pde = mem.r32(self.root + i * 4)
            if not pde & PRESENT:
                continue
            table = pde & PAGE_MASK
            raw = mem.read(table, PAGE_SIZE)
            for j in range(1024):
                pte = int.from_bytes(raw[j * 4:j * 4 + 4], "little")
                if pte & PRESENT:
                    yield (i << 22) | (j << 12), pte

    def destroy(self) -> None:
        """Give back the page tables and the directory (not the mapped frames)."""
        for i in range(KERNEL_PDE_FIRST):
            pde = self._mem.r32(self.root + i * 4)
            if pde & PRESENT:
                self._kalloc.free(pde & PAGE_MASK)
        self._kalloc.free(self.root)
        self.root = 0
