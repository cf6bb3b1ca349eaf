"""ELF headers as the kernel reads them (the seed's ``Eh`` and ``Ph``).

Layouts: System V ABI, "ELF Header" and "Program Header" (gabi41, ch. 4),
32-bit little-endian.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import NamedTuple

ELF_MAGIC = b"\x7fELF"
ELFCLASS32 = 1
ELFDATA2LSB = 1
ET_EXEC = 2
EM_386 = 3
PT_LOAD = 1
PF_X, PF_W, PF_R = 1, 2, 4

#: An ELF file's bytes, or a view of them where they lie (guest RAM).
Image = bytes | memoryview

EH = struct.Struct("<16sHHIIIIIHHHHHH")
PH = struct.Struct("<8I")
#: The most program headers the kernel reads: 64 KiB of them (GNU ld
#: writes fewer than 20), so the loader's work stays bounded.
MAX_PHNUM = 65536 // PH.size

ET_NAMES = {0: "NONE", 1: "REL", 2: "EXEC", 3: "DYN", 4: "CORE"}
PT_NAMES = {0: "NULL", 1: "LOAD", 2: "DYNAMIC", 3: "INTERP", 4: "NOTE", 5: "SHLIB",
            6: "PHDR", 7: "TLS", 0x6474E550: "GNU_EH_FRAME", 0x6474E551: "GNU_STACK",
            0x6474E552: "GNU_RELRO"}


class ElfError(Exception):
    """The module is not an ELF executable this kernel can run."""


class Eh(NamedTuple):
    """Elf32_Ehdr."""

    ident: bytes
    type: int
    machine: int
    version: int
    entry: int
    phoff: int
    shoff: int
    flags: int
    ehsize: int
    phentsize: int
    phnum: int
    shentsize: int
    shnum: int
    shstrndx: int

    @classmethod
    def unpack(cls, image: Image) -> Eh:
        if len(image) < EH.size:
            raise ElfError(f"truncated ELF header: {len(image)} bytes, need {EH.size}")
        return cls(*EH.unpack_from(image))

    @property
    def elf_class(self) -> int:
        return self.ident[4]

    @property
    def data(self) -> int:
        return self.ident[5]


class Ph(NamedTuple):
    """Elf32_Phdr."""

    type: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int
    flags: int
    align: int

    @classmethod
    def unpack(cls, image: Image, offset: int) -> Ph:
        return cls(*PH.unpack_from(image, offset))

    @property
    def flag_string(self) -> str:
        return ("R" if self.flags & PF_R else " ") + ("W" if self.flags & PF_W else " ") + \
            ("E" if self.flags & PF_X else " ")


class HeaderCheck(NamedTuple):
    """One of the seed's step-1 checks: what must hold, and the reason given
    when it does not."""

    holds: str
    test: Callable[[Eh, int], bool]        # (header, file size)
    reason: Callable[[Eh, int], str]


#: The header checks after the magic, in the order the kernel applies them
#: (``pynova readelf`` lists the same table).
HEADER_CHECKS: tuple[HeaderCheck, ...] = (
    HeaderCheck("class is ELFCLASS32 (1)", lambda eh, n: eh.elf_class == ELFCLASS32,
                lambda eh, n: f"ELF class {eh.elf_class} is not 32-bit (1)"),
    HeaderCheck("data is little-endian (1)", lambda eh, n: eh.data == ELFDATA2LSB,
                lambda eh, n: f"data encoding {eh.data} is not little-endian (1)"),
    HeaderCheck("type is EXEC (2)", lambda eh, n: eh.type == ET_EXEC,
                lambda eh, n: f"type {ET_NAMES.get(eh.type, eh.type)} is not an "
                              f"executable (EXEC)"),
    HeaderCheck("machine is i386 (3)", lambda eh, n: eh.machine == EM_386,
                lambda eh, n: f"machine {eh.machine} is not i386 (3)"),
    HeaderCheck("has program headers", lambda eh, n: eh.phnum > 0,
                lambda eh, n: "no program headers"),
    HeaderCheck(f"at most {MAX_PHNUM} program headers", lambda eh, n: eh.phnum <= MAX_PHNUM,
                lambda eh, n: f"{eh.phnum} program headers, more than {MAX_PHNUM}"),
    HeaderCheck(f"program header size is {PH.size}", lambda eh, n: eh.phentsize == PH.size,
                lambda eh, n: f"program header size {eh.phentsize} is not {PH.size}"),
    HeaderCheck("program headers lie inside the file",
                lambda eh, n: eh.phoff + eh.phnum * PH.size <= n,
                lambda eh, n: f"program headers at {eh.phoff:#x} ({eh.phnum} entries) "
                              f"lie outside the file of {n} bytes"),
)


def check_magic(image: Image) -> None:
    if len(image) < 4 or image[:4] != ELF_MAGIC:
        raise ElfError("bad magic: not an ELF file")


def check_header(image: Image) -> Eh:
    """The seed's step 1 checks, one reason per failure."""
    check_magic(image)
    eh = Eh.unpack(image)
    for check in HEADER_CHECKS:
        if not check.test(eh, len(image)):
            raise ElfError(check.reason(eh, len(image)))
    return eh


def program_headers(image: Image, eh: Eh) -> list[Ph]:
    return [Ph.unpack(image, eh.phoff + i * PH.size) for i in range(eh.phnum)]
