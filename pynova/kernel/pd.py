"""Pd (NOVA's protection domain): one task's address space and the frames
it owns. The kernel touches user memory only through here, i.e. through the
task's page tables, with the rights a user access would have.

``Heap`` is what the nbrk part (heap.py, lab brk) sees of a Pd.
"""

from __future__ import annotations

from collections.abc import Sequence

from pynova.kernel.kalloc import Kalloc, OutOfMemory
from pynova.kernel.layout import PAGE_MASK, PAGE_SIZE, USER_END
from pynova.kernel.loader import Plan
from pynova.kernel.ptab import PRESENT, RW, USER, Ptab
from pynova.machine.memory import PhysicalMemory

#: Bytes of address space one page table maps.
TABLE_SPAN = 1 << 22


class UserMemoryError(Exception):
    """A user pointer that the user itself could not use."""

    def __init__(self, addr: int, write: bool) -> None:
        super().__init__(f"user {'write' if write else 'read'} of unmapped or "
                         f"protected address {addr:#x}")
        self.addr = addr
        self.write = write


def frames_needed(plan: Plan) -> int:
    """Frames a fresh Pd takes to load ``plan``: fresh and copied pages,
    the stack page and one page table per 4 MiB that anything touches."""
    pages = sum(run.pages for run in plan.runs if run.kind != "file") + plan.needs_stack
    tables: set[int] = set()
    last = -1
    for run in plan.runs:
        first, end = run.virt >> 22, ((run.end - 1) >> 22) + 1
        tables.update(range(max(first, last), end))
        last = end
    if plan.needs_stack:
        tables.add(plan.stack_page >> 22)
    return pages + len(tables)


class Pd:
    """An address space: page tables plus the frames mapped only here."""

    def __init__(self, memory: PhysicalMemory, kalloc: Kalloc, ptab: Ptab) -> None:
        self.memory = memory
        self.kalloc = kalloc
        self.ptab = ptab
        self.owned: set[int] = set()   # frames to give back on destroy/unmap
        self.heap = Heap(self)

    @property
    def brk(self) -> int:
        """The heap's break (its state lives in ``heap``, nbrk's view)."""
        return self.heap.brk

    @brk.setter
    def brk(self, value: int) -> None:
        self.heap.brk = value

    @property
    def initial_break(self) -> int:
        return self.heap.initial_break

    @initial_break.setter
    def initial_break(self, value: int) -> None:
        self.heap.initial_break = value

    # ------------------------------------------------------------ mapping
    def map_fresh(self, virt: int, attr: int) -> int:
        """Map a new zeroed frame at ``virt``; return the frame."""
        frame = self.fresh_frames(1)[0]
        self.ptab.insert_mapping(virt, frame, attr)
        return frame

    def unmap(self, virt: int) -> None:
        frame = self.ptab.unmap(virt)
        if frame is not None and frame in self.owned:
            self.owned.discard(frame)
            self.kalloc.free(frame)

    def fresh_frames(self, count: int) -> list[int]:
        """``count`` zeroed frames that this Pd owns (given back with it)."""
        frames = []
        for _ in range(count):
            frames.append(self.kalloc.alloc_zeroed())
            self.owned.add(frames[-1])
        return frames

    def copy_frame(self, source: int, zero: Sequence[tuple[int, int]] = ()) -> int:
        """A frame this Pd owns holding a copy of the frame at ``source``,
        with the byte ranges ``zero`` (page-relative [lo, hi)) cleared."""
        copy = bytearray(self.memory.read(source, PAGE_SIZE))
        for lo, hi in zero:
            copy[lo:hi] = bytes(hi - lo)
        frame = self.kalloc.alloc()
        self.owned.add(frame)
        self.memory.write(frame, bytes(copy))
        return frame

    def free_empty_tables(self, start: int, end: int) -> None:
        """Give back the page tables of [start, end) that map nothing any
        more (their directory entries cleared)."""
        for base in range(start & ~(TABLE_SPAN - 1), end, TABLE_SPAN):
            walk = self.ptab.walk(base)
            if not walk.pde & PRESENT:
                continue
            table = walk.pde & PAGE_MASK
            if self.memory.read(table, PAGE_SIZE).count(0) == PAGE_SIZE:
                self.memory.w32(walk.pde_addr, 0)
                self.kalloc.free(table)

    def destroy(self) -> None:
        for frame in sorted(self.owned):
            self.kalloc.free(frame)
        self.owned.clear()
        self.ptab.destroy()

    # -------------------------------------------------------- user access
    def _user_phys(self, virt: int, write: bool) -> int:
        if virt >= USER_END:
            raise UserMemoryError(virt, write)
        walk = self.ptab.walk(virt)
        need = PRESENT | USER | (RW if write else 0)
        if walk.attr & need != need:
            raise UserMemoryError(virt, write)
        return walk.phys  # type: ignore[return-value]

    def read_user(self, virt: int, length: int) -> bytes:
        """Read user memory as the user could, page by page."""
        out = bytearray()
        while length > 0:
            chunk = min(length, PAGE_SIZE - virt % PAGE_SIZE)
            out += self.memory.read(self._user_phys(virt, False), chunk)
            virt, length = virt + chunk, length - chunk
        return bytes(out)

    def write_user(self, virt: int, data: bytes, *, ignore_rw: bool = False) -> None:
        """Write user memory; ``ignore_rw`` lets a debugger patch read-only
        pages (a user-mode write would fault)."""
        pos = 0
        while pos < len(data):
            chunk = min(len(data) - pos, PAGE_SIZE - virt % PAGE_SIZE)
            phys = self._user_phys(virt, not ignore_rw)
            self.memory.write(phys, data[pos:pos + chunk])
            virt, pos = virt + chunk, pos + chunk

    def readable(self, virt: int) -> bool:
        try:
            self._user_phys(virt, False)
            return True
        except UserMemoryError:
            return False


class Heap:
    """What the nbrk part works with (lab brk): the task's break and the
    pages above its initial break. Frames come from the kernel's allocator;
    a page mapped here belongs to the task until it is unmapped (its frame
    is given back with the task)."""

    def __init__(self, pd: Pd) -> None:
        self._pd = pd
        self._insert = pd.ptab.insert_mapping
        self._owned = pd.owned
        #: The heap is [initial_break, brk): it starts at the end of the
        #: loaded program (the kernel sets both when it loads it).
        self.initial_break = 0
        self.brk = 0
        kalloc = pd.kalloc
        self.alloc_frame = kalloc.alloc                # a free frame as it is (old contents)
        self.alloc_zeroed_frame = kalloc.alloc_zeroed  # a free frame that reads as zero
        self.free_frame = kalloc.free                  # give a frame back
        self.flush = pd.ptab.flush                     # forget stale translations (the TLB)

    def insert_mapping(self, virt: int, frame: int, attr: int) -> None:
        """Map ``frame`` at page ``virt`` (the insert_mapping part); the
        frame is the task's from now on. OutOfMemory when a new page table
        is needed and no frame is free (then nothing changed)."""
        self._insert(virt, frame, attr)
        self._owned.add(frame)

    def unmap(self, virt: int) -> None:
        """Remove the mapping of page ``virt`` and give its frame back."""
        self._pd.unmap(virt)

    def free_empty_tables(self, start: int, end: int) -> None:
        """Give back the page tables of [start, end) that map nothing any more."""
        self._pd.free_empty_tables(start, end)

    def write(self, virt: int, data: bytes) -> None:
        """Write user memory at ``virt`` (it must be mapped writable)."""
        self._pd.write_user(virt, data)


__all__ = ["Heap", "OutOfMemory", "Pd", "UserMemoryError"]
