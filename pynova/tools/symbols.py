"""Symbols from an ELF file's ``.symtab``: address -> ``name+offset``.

Layouts: System V ABI gabi41 ch. 4, "Sections" and "Symbol Table"
(Elf32_Shdr, Elf32_Sym), 32-bit little-endian.
"""

from __future__ import annotations

import bisect
import struct
from typing import NamedTuple

SHDR = struct.Struct("<10I")
SYM = struct.Struct("<IIIBBH")
SHT_SYMTAB = 2
STT_NOTYPE, STT_OBJECT, STT_FUNC = 0, 1, 2
SHN_UNDEF, SHN_ABS = 0, 0xFFF1


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
    def from_elf(cls, image: bytes) -> SymbolTable:
        """Parse ``.symtab``; an image without one (or a damaged one) gives
        an empty table, never an exception."""
        try:
            return cls(list(_read_symbols(image)))
        except (struct.error, IndexError, ValueError):
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


def _section_headers(image: bytes) -> list[tuple[int, ...]]:
    shoff = struct.unpack_from("<I", image, 32)[0]
    shentsize, shnum = struct.unpack_from("<HH", image, 46)
    if not shoff or shentsize != SHDR.size:
        return []
    return [SHDR.unpack_from(image, shoff + i * SHDR.size) for i in range(shnum)]


def _cstring(image: bytes, offset: int) -> str:
    end = image.index(b"\0", offset)
    return image[offset:end].decode("latin-1")


def _read_symbols(image: bytes):  # type: ignore[no-untyped-def]
    shdrs = _section_headers(image)
    for sh in shdrs:
        if sh[1] != SHT_SYMTAB or sh[6] >= len(shdrs):
            continue
        strtab_off = shdrs[sh[6]][4]
        offset, size = sh[4], sh[5]
        for pos in range(offset, offset + size - SYM.size + 1, SYM.size):
            name, value, sym_size, info, _other, shndx = SYM.unpack_from(image, pos)
            kind = info & 0xF
            if not name or shndx == SHN_UNDEF or kind not in (STT_NOTYPE, STT_OBJECT, STT_FUNC):
                continue
            if shndx == SHN_ABS:
                continue
            yield Symbol(_cstring(image, strtab_off + name), value, sym_size, kind)
