"""What ``qemu -kernel K -initrd M`` does for a Multiboot kernel: put the
modules into RAM and describe them in a Multiboot information structure.

Layouts from the Multiboot Specification 0.6.96, section 3.3 "Boot
information format".
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pynova.machine.memory import PhysicalMemory

PAGE = 4096
MBI_FLAG_MEM = 1 << 0     # mem_lower and mem_upper are valid
MBI_FLAG_CMDLINE = 1 << 2
MBI_FLAG_MODS = 1 << 3    # mods_count and mods_addr are valid

#: flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr
#: (the rest of the 88-byte structure stays zero).
MBI = struct.Struct("<7I")
MBI_SIZE = 88
#: mod_start, mod_end, string, reserved
MODULE = struct.Struct("<4I")


class Module(NamedTuple):
    start: int
    end: int
    cmdline: str

    @classmethod
    def unpack(cls, memory: PhysicalMemory, addr: int) -> Module:
        start, end, string, _ = MODULE.unpack(memory.read(addr, MODULE.size))
        return cls(start, end, read_cstring(memory, string))


class BootLoaderError(Exception):
    """The modules do not fit into the guest's RAM."""


def read_cstring(memory: PhysicalMemory, addr: int, limit: int = 4096) -> str:
    raw = memory.read(addr, min(limit, memory.size - addr))
    return raw.split(b"\0", 1)[0].decode("latin-1")


def align_up(value: int, align: int = PAGE) -> int:
    return (value + align - 1) & -align


def load_multiboot(memory: PhysicalMemory, modules: list[tuple[bytes, str]],
                   info_addr: int, first_free: int, cmdline: str = "pynova") -> int:
    """Place each module page-aligned from ``first_free`` on, write the
    Multiboot information at ``info_addr`` and return that address."""
    mods_addr = info_addr + MBI_SIZE
    strings = mods_addr + MODULE.size * len(modules)
    cursor = align_up(first_free)
    names = [cmdline] + [name for _, name in modules]
    string_addrs = []
    for name in names:
        string_addrs.append(strings)
        memory.write(strings, name.encode("latin-1") + b"\0")
        strings += len(name) + 1
    if strings > first_free:
        raise BootLoaderError("module command lines overflow the boot information area")
    for i, (image, _) in enumerate(modules):
        end = cursor + len(image)
        if align_up(end) > memory.size:
            raise BootLoaderError(
                f"module of {len(image)} bytes does not fit into {memory.size >> 20} MiB of RAM")
        memory.write(cursor, image)
        memory.write(mods_addr + MODULE.size * i,
                     MODULE.pack(cursor, end, string_addrs[i + 1], 0))
        cursor = align_up(end)
    mem_upper_kib = (memory.size - 0x100000) // 1024
    memory.write(info_addr, MBI.pack(MBI_FLAG_MEM | MBI_FLAG_CMDLINE | MBI_FLAG_MODS,
                                     640, mem_upper_kib, 0, string_addrs[0],
                                     len(modules), mods_addr))
    return info_addr


class BootInfo(NamedTuple):
    """The parts of the Multiboot information the kernel uses."""

    mem_size: int
    cmdline: str
    modules: tuple[Module, ...]

    @classmethod
    def unpack(cls, memory: PhysicalMemory, addr: int) -> BootInfo:
        flags, _lower, upper, _dev, cmdline, count, mods = MBI.unpack(memory.read(addr, MBI.size))
        mem_size = 0x100000 + upper * 1024 if flags & MBI_FLAG_MEM else 0
        text = read_cstring(memory, cmdline) if flags & MBI_FLAG_CMDLINE else ""
        modules: tuple[Module, ...] = ()
        if flags & MBI_FLAG_MODS:
            modules = tuple(Module.unpack(memory, mods + MODULE.size * i) for i in range(count))
        return cls(mem_size, text, modules)
