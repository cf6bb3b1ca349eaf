"""Hand-made i386 ELF files for the loader's and the limits' tests: a
header, program headers and a few bytes of code, laid out by the test."""

from __future__ import annotations

import struct
from typing import NamedTuple

from pynova.kernel.elf import EH, PF_R, PF_W, PF_X, PH, PT_LOAD

SHDR = struct.Struct("<10I")   # Elf32_Shdr
SYM = struct.Struct("<IIIBBH")  # Elf32_Sym
RX, RW = PF_R | PF_X, PF_R | PF_W


class Seg(NamedTuple):
    vaddr: int
    offset: int
    filesz: int
    memsz: int
    flags: int = RX
    type: int = PT_LOAD


def exit_code(at: int, status: int = 0) -> bytes:
    """Machine code at virtual ``at`` that calls exit(status) (call 6)."""
    after = at + 5 + 5 + 2 + 5 + 2
    return (b"\xb8\x06\x00\x00\x00"                       # mov $6, %eax
            + b"\xbe" + struct.pack("<I", status)          # mov $status, %esi
            + b"\x89\xe1"                                  # mov %esp, %ecx
            + b"\xba" + struct.pack("<I", after)           # mov $after, %edx
            + b"\x0f\x34")                                 # sysenter


def elf(segments: list[Seg], entry: int, *, size: int = 0x2000,
        patches: dict[int, bytes] | None = None, phoff: int = EH.size,
        phnum: int | None = None, shoff: int = 0, shnum: int = 0) -> bytes:
    """An ET_EXEC i386 image of ``size`` bytes with these program headers
    at ``phoff`` and ``patches`` (file offset -> bytes) written in."""
    count = len(segments) if phnum is None else phnum
    image = bytearray(max(size, phoff + PH.size * len(segments)))
    ident = b"\x7fELF\x01\x01\x01" + bytes(9)
    EH.pack_into(image, 0, ident, 2, 3, 1, entry, phoff, shoff, 0, EH.size, PH.size, count,
                 SHDR.size if shnum else 0, shnum, 0)
    for i, s in enumerate(segments):
        PH.pack_into(image, phoff + i * PH.size, s.type, s.offset, s.vaddr, s.vaddr, s.filesz,
                     s.memsz, s.flags, 0x1000)
    for at, data in (patches or {}).items():
        image[at:at + len(data)] = data
    return bytes(image)


def exiting(segments: list[Seg], *, code_offset: int = 0x1000, code_vaddr: int = 0x2000,
            **kwargs: object) -> bytes:
    """``elf`` whose entry at ``code_vaddr`` (file ``code_offset``) exits(0)."""
    patches = {code_offset: exit_code(code_vaddr)}
    return elf(segments, code_vaddr, patches=patches, **kwargs)  # type: ignore[arg-type]


__all__ = ["PT_LOAD", "RW", "RX", "SHDR", "SYM", "Seg", "elf", "exit_code", "exiting"]
