"""Guest physical RAM: one host buffer, addressed by physical address."""

from __future__ import annotations

import ctypes
import mmap
import struct

_U32 = struct.Struct("<I")


class PhysicalMemoryError(Exception):
    """An access outside the guest's physical RAM."""


class PhysicalMemory:
    """The guest's RAM as one anonymous mapping (zero-filled by the host OS).

    The CPU backend maps the same buffer as the guest's RAM, so what is
    written here is what the emulated CPU sees, and the other way round.
    """

    def __init__(self, size: int) -> None:
        if size <= 0 or size % 4096:
            raise ValueError("RAM size must be a positive multiple of 4 KiB")
        self.size = size
        self._map = mmap.mmap(-1, size)
        self._anchor = ctypes.c_char.from_buffer(self._map)
        self.host_address = ctypes.addressof(self._anchor)
        self.view = memoryview(self._map)

    def _check(self, addr: int, length: int) -> None:
        if addr < 0 or length < 0 or addr + length > self.size:
            raise PhysicalMemoryError(
                f"physical access {addr:#x}+{length:#x} outside RAM of {self.size:#x} bytes")

    def read(self, addr: int, length: int) -> bytes:
        self._check(addr, length)
        return self._map[addr:addr + length]

    def write(self, addr: int, data: bytes) -> None:
        self._check(addr, len(data))
        self._map[addr:addr + len(data)] = data

    def fill(self, addr: int, length: int, byte: int = 0) -> None:
        self._check(addr, length)
        self._map[addr:addr + length] = bytes([byte]) * length

    def r32(self, addr: int) -> int:
        self._check(addr, 4)
        return _U32.unpack_from(self._map, addr)[0]

    def w32(self, addr: int, value: int) -> None:
        self._check(addr, 4)
        _U32.pack_into(self._map, addr, value & 0xFFFFFFFF)

    def close(self) -> None:
        """Give the host buffer back; the machine must not run afterwards.
        While some view of it is still alive (a lab's code may keep a slice
        of a module image), the buffer goes with the last such view."""
        self.view.release()
        del self._anchor
        try:
            self._map.close()
        except BufferError:
            pass
