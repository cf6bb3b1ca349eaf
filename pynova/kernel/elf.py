"""ELF headers as the kernel reads them (the seed's ``Eh`` and ``Ph``),
and the symbol table (for ``stack_top``; the tools name addresses with it).

Layouts: System V ABI, "ELF Header", "Program Header", "Sections" and
"Symbol Table" (gabi41, ch. 4), 32-bit little-endian.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterator
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
SHDR = struct.Struct("<10I")        # Elf32_Shdr
SYM = struct.Struct("<IIIBBH")      # Elf32_Sym: name, value, size, info, other, shndx
SHT_SYMTAB = 2
SHN_UNDEF, SHN_ABS = 0, 0xFFF1
#: The most program headers the kernel reads: 64 KiB of them (GNU ld
#: writes fewer than 20), so the loader's work stays bounded.
MAX_PHNUM = 65536 // PH.size
#: Bounds on the symbol-table work a damaged or hostile file can ask for:
#: at most this many symbols are read, names at most this long.
MAX_SYMBOLS = 1 << 16
MAX_NAME = 256

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


class Sym(NamedTuple):
    """One Elf32_Sym with its name resolved."""

    name: str
    value: int
    size: int
    info: int
    shndx: int


def _piece(image: Image, offset: int, length: int) -> Image:
    """``length`` bytes at ``offset``, or ValueError past the end."""
    if offset < 0 or length < 0 or offset + length > len(image):
        raise ValueError(f"{offset:#x}+{length:#x} lies outside the file")
    return image[offset:offset + length]


def _symtab(image: Image) -> tuple[int, int, int] | None:
    """(offset, size, string table offset) of the first SHT_SYMTAB section
    (the gABI allows one per file), or None."""
    shoff, = struct.unpack_from("<I", _piece(image, 32, 4))
    shentsize, shnum = struct.unpack_from("<HH", _piece(image, 46, 4))
    if not shoff or shentsize != SHDR.size:
        return None
    shdrs = _piece(image, shoff, shnum * SHDR.size)
    for sh in SHDR.iter_unpack(shdrs):
        if sh[1] == SHT_SYMTAB:
            if sh[6] >= shnum:
                return None
            return sh[4], sh[5], SHDR.unpack_from(shdrs, sh[6] * SHDR.size)[4]
    return None


def _cstring(image: Image, offset: int) -> str:
    text = bytes(_piece(image, offset, max(0, min(MAX_NAME, len(image) - offset))))
    end = text.find(b"\0")
    if end < 0:
        raise ValueError(f"symbol name at {offset:#x} is not a string")
    return text[:end].decode("latin-1")


def symbols(image: Image, until: float | None = None) -> Iterator[Sym]:
    """The named, defined entries of ``.symtab`` (the first MAX_SYMBOLS).
    A damaged table raises struct.error or ValueError part way; running
    past the monotonic time ``until`` raises TimeoutError."""
    found = _symtab(image)
    if found is None:
        return
    offset, size, strtab_off = found
    count = min(size, max(0, len(image) - offset)) // SYM.size
    table = _piece(image, offset, min(count, MAX_SYMBOLS) * SYM.size)
    for n, (name, value, sym_size, info, _other, shndx) in enumerate(SYM.iter_unpack(table)):
        if until is not None and n % 4096 == 4095 and time.monotonic() >= until:
            raise TimeoutError("out of time reading the symbols")
        if name and shndx != SHN_UNDEF:
            yield Sym(_cstring(image, strtab_off + name), value, sym_size, info, shndx)


def find_symbol(image: Image, name: str) -> int | None:
    """The value of the symbol ``name``, or None: absent, or the section
    headers or symbol table are damaged (they are optional for running)."""
    try:
        return next((s.value for s in symbols(image) if s.name == name), None)
    except (struct.error, ValueError):
        return None
