"""kalloc: the physical page-frame allocator (like xv6's kalloc.c).

A frame comes as it is, holding whatever its last user left in it, as on
real hardware; ``alloc_zeroed`` gives one that reads as zero. Frames never
handed out yet are kept as one range (``_next`` up to ``_end``), so that
booting a machine with a large RAM costs nothing: RAM above ``start`` is
untouched when the allocator is made (the host's zero-filled mapping), the
host provides a page only when the guest first touches it, and only frames
handed out before need clearing.

``poison`` (the labs turn it on) fills every frame the allocator hands out
as it is or takes back with junk bytes (0x01, as xv6's kfree does), so
that code which forgets to clear a new page table or heap page reads junk
every time instead of the zeros a fresh machine happens to have.
"""

from __future__ import annotations

from pynova.kernel.layout import PAGE_SIZE
from pynova.machine.memory import PhysicalMemory

#: What a poisoned allocator fills frames with (xv6's kfree: memset(pa, 1, PGSIZE)).
JUNK = 0x01


class OutOfMemory(Exception):
    """No free physical frame is left."""


class Kalloc:
    """Hands out 4 KiB frames of guest RAM from [start, end)."""

    def __init__(self, memory: PhysicalMemory, start: int, end: int, *,
                 poison: bool = False) -> None:
        self._memory = memory
        self._start = start
        self._next = start
        self._end = end
        self._freed: list[int] = []
        self._is_freed: set[int] = set()
        self.poison = poison

    def alloc(self) -> int:
        """A free frame as it is: what its last user left (junk when poisoned)."""
        if self._freed:
            frame = self._freed.pop()
            self._is_freed.discard(frame)
        elif self._next < self._end:
            frame = self._next
            self._next += PAGE_SIZE
            if self.poison:
                self._memory.fill(frame, PAGE_SIZE, JUNK)
        else:
            raise OutOfMemory("out of physical memory")
        return frame

    def alloc_zeroed(self) -> int:
        """A free frame that reads as zero. (Spelled out like alloc: the
        heap takes one per page it grows.)"""
        if self._freed:
            frame = self._freed.pop()
            self._is_freed.discard(frame)
            self._memory.fill(frame, PAGE_SIZE)
        elif self._next < self._end:
            frame = self._next  # never handed out: still as zero as the host made it
            self._next += PAGE_SIZE
        else:
            raise OutOfMemory("out of physical memory")
        return frame

    def free(self, frame: int) -> None:
        if (frame % PAGE_SIZE or not self._start <= frame < self._next
                or frame in self._is_freed):
            raise ValueError(f"kalloc: bad free of frame {frame:#x}")
        if self.poison:
            self._memory.fill(frame, PAGE_SIZE, JUNK)
        self._freed.append(frame)
        self._is_freed.add(frame)

    @property
    def free_count(self) -> int:
        return len(self._freed) + (self._end - self._next) // PAGE_SIZE
