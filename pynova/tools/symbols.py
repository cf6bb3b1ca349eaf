"""Symbols from an ELF file's ``.symtab``: address -> ``name+offset``.

Layouts: System V ABI gabi41 ch. 4, "Sections" and "Symbol Table"
(Elf32_Shdr, Elf32_Sym), 32-bit little-endian.
"""

from __future__ import annotations

import bisect
import struct
import time
from collections.abc import Callable
from typing import NamedTuple

SHDR = struct.Struct("<10I")
SYM = struct.Struct("<IIIBBH")
SHT_SYMTAB = 2
STT_NOTYPE, STT_OBJECT, STT_FUNC = 0, 1, 2
SHN_UNDEF, SHN_ABS = 0, 0xFFF1
#: Bounds on the work a damaged or hostile file can ask for: a fault's
#: explanation reads at most this many symbols, names this long.
MAX_SYMBOLS = 1 << 16
MAX_NAME = 256


#: read(offset, length) -> the file's bytes there
Reader = Callable[[int, int], bytes]


class Symbol(NamedTuple):
    name: str
    value: int
    size: int
    kind: int


class SymbolTable:
    """The named code and data symbols of one ELF image, sorted by address."""

    def __init__(self, symbols: list[Symbol]) -> None:
        self.symbols = sorted(symbols, key=lambda s: (s.value, s.kind != STT_FUNC, s.name))
        self._values = [s.value for s in self.symbols]

    @classmethod
    def from_elf(cls, image: bytes, until: float | None = None) -> SymbolTable:
        """Parse ``.symtab`` (its first MAX_SYMBOLS entries); an image
        without one, a damaged one, or running past the monotonic time
        ``until`` gives an empty table, never an exception."""
        return cls.from_reader(lambda offset, size: image[offset:offset + size], len(image),
                               until)

    @classmethod
    def from_reader(cls, read: Reader, size: int, until: float | None = None) -> SymbolTable:
        """``from_elf`` for an image of ``size`` bytes read in pieces
        (``read(offset, length)``): no copy of the whole file is made."""
        try:
            return cls(list(_read_symbols(_Image(read, size), until)))
        except (struct.error, IndexError, ValueError, TimeoutError):
            return cls([])

    def __len__(self) -> int:
        return len(self.symbols)

    def address_of(self, name: str) -> int | None:
        for sym in self.symbols:
            if sym.name == name:
                return sym.value
        return None

    def lookup(self, addr: int) -> tuple[Symbol, int] | None:
        """The symbol at or below ``addr`` that covers it (or, for a
        size-less label, is the nearest one below), with the offset."""
        i = bisect.bisect_right(self._values, addr) - 1
        if i < 0:
            return None
        best = self._best_at(i, addr)
        return (best, addr - best.value) if best is not None else None

    def _best_at(self, i: int, addr: int) -> Symbol | None:
        value = self.symbols[i].value
        candidates = [s for s in self.symbols[bisect.bisect_left(self._values, value):i + 1]]
        sized = [s for s in candidates if s.size and addr < s.value + s.size]
        if sized:
            return sized[0]
        labels = [s for s in candidates if not s.size]
        if labels and (addr == value or self._inside_nothing_else(addr)):
            return labels[0]
        return None

    def _inside_nothing_else(self, addr: int) -> bool:
        return not any(s.size and s.value <= addr < s.value + s.size for s in self.symbols)

    def describe(self, addr: int) -> str | None:
        """``main+0xc`` (or ``main``), or None when no symbol covers ``addr``."""
        hit = self.lookup(addr)
        if hit is None:
            return None
        sym, offset = hit
        return f"{sym.name}+{offset:#x}" if offset else sym.name


class _Image(NamedTuple):
    read: Reader
    size: int

    def piece(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``, or ValueError past the end."""
        if offset < 0 or offset + length > self.size:
            raise ValueError(f"{offset:#x}+{length:#x} lies outside the file")
        return self.read(offset, length)


def _symtab(image: _Image) -> tuple[int, int, int] | None:
    """(offset, size, string table offset) of the symbol table: the first
    SHT_SYMTAB section (the gABI allows one per file)."""
    shoff, = struct.unpack("<I", image.piece(32, 4))
    shentsize, shnum = struct.unpack("<HH", image.piece(46, 4))
    if not shoff or shentsize != SHDR.size or shoff + shnum * SHDR.size > image.size:
        return None
    shdrs = image.piece(shoff, shnum * SHDR.size)
    for sh in SHDR.iter_unpack(shdrs):
        if sh[1] == SHT_SYMTAB:
            if sh[6] >= shnum:
                return None
            return sh[4], sh[5], SHDR.unpack_from(shdrs, sh[6] * SHDR.size)[4]
    return None


def _cstring(image: _Image, offset: int) -> str:
    text = image.piece(offset, max(0, min(MAX_NAME, image.size - offset)))
    end = text.find(b"\0")
    if end < 0:
        raise ValueError(f"symbol name at {offset:#x} is not a string")
    return text[:end].decode("latin-1")


def _read_symbols(image: _Image, until: float | None):  # type: ignore[no-untyped-def]
    found = _symtab(image)
    if found is None:
        return
    offset, size, strtab_off = found
    count = min(size, max(0, image.size - offset)) // SYM.size
    table = image.piece(offset, min(count, MAX_SYMBOLS) * SYM.size)
    for n, (name, value, sym_size, info, _other, shndx) in enumerate(SYM.iter_unpack(table)):
        if until is not None and n % 4096 == 4095 and time.monotonic() >= until:
            raise TimeoutError("out of time reading the symbols")
        kind = info & 0xF
        if not name or shndx in (SHN_UNDEF, SHN_ABS) or kind not in (STT_NOTYPE, STT_OBJECT,
                                                                       STT_FUNC):
            continue
        yield Symbol(_cstring(image, strtab_off + name), value, sym_size, kind)
