"""Symbols from an ELF file's ``.symtab``: address -> ``name+offset``.

The table itself is read by ``pynova.kernel.elf.symbols`` (Elf32_Shdr,
Elf32_Sym); this keeps the code and data symbols and answers lookups.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterator
from typing import NamedTuple

from pynova.kernel.elf import SHN_ABS, Image, symbols

STT_NOTYPE, STT_OBJECT, STT_FUNC = 0, 1, 2


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
    def from_elf(cls, image: Image, until: float | None = None) -> SymbolTable:
        """Parse ``.symtab`` (its first MAX_SYMBOLS entries); an image
        without one, a damaged one, or running past the monotonic time
        ``until`` gives an empty table, never an exception. ``image`` may
        be a view of guest RAM: nothing is copied."""
        try:
            return cls(list(_read_symbols(image, until)))
        except (struct.error, ValueError, TimeoutError):
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


def _read_symbols(image: Image, until: float | None) -> Iterator[Symbol]:
    for sym in symbols(image, until):
        kind = sym.info & 0xF
        if kind in (STT_NOTYPE, STT_OBJECT, STT_FUNC) and sym.shndx != SHN_ABS:
            yield Symbol(sym.name, sym.value, sym.size, kind)
