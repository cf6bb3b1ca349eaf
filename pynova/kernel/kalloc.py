"""kalloc: the physical page-frame allocator (like xv6's kalloc.c).

Frames never handed out yet are kept as one range (``_next`` up to
``_end``), so that booting a machine with a large RAM costs nothing; frames
given back go onto a free list and are handed out again first. RAM above
``start`` is untouched when the allocator is made (the host's zero-filled
mapping), so only frames handed out before need clearing: the host then
provides a page only when the guest first touches it.
"""

from __future__ import annotations

from pynova.kernel.layout import PAGE_SIZE
from pynova.machine.memory import PhysicalMemory


class OutOfMemory(Exception):
    """No free physical frame is left."""


class Kalloc:
    """Hands out 4 KiB frames of guest RAM from [start, end)."""

    def __init__(self, memory: PhysicalMemory, start: int, end: int) -> None:
        self._memory = memory
        self._start = start
        self._next = start
        self._end = end
        self._freed: list[int] = []
        self._is_freed: set[int] = set()

    def alloc(self, zero: bool = True) -> int:
        """A free frame's physical address, reading as zero unless asked not to."""
        if self._freed:
            frame = self._freed.pop()
            self._is_freed.discard(frame)
        elif self._next < self._end:
            frame = self._next
            self._next += PAGE_SIZE
            zero = False  # never handed out: still as zero as the host made it
        else:
            raise OutOfMemory("out of physical memory")
        if zero:
            self._memory.fill(frame, PAGE_SIZE)
        return frame

    def free(self, frame: int) -> None:
        if (frame % PAGE_SIZE or not self._start <= frame < self._next
                or frame in self._is_freed):
            raise ValueError(f"kalloc: bad free of frame {frame:#x}")
        self._freed.append(frame)
        self._is_freed.add(frame)

    @property
    def free_count(self) -> int:
        return len(self._freed) + (self._end - self._next) // PAGE_SIZE
