"""GDT, TSS and IDT in their hardware formats (Intel SDM vol. 3A, 3.4.5
"Segment Descriptors", 7.2.1 "Task-State Segment", 6.11 "IDT Descriptors")."""

from __future__ import annotations

import struct

from pynova.kernel import layout

# Access bytes: present, DPL, descriptor type.
ACCESS_KERN_CODE = 0x9A   # P, DPL0, code, readable
ACCESS_KERN_DATA = 0x92   # P, DPL0, data, writable
ACCESS_USER_CODE = 0xFA   # P, DPL3, code, readable
ACCESS_USER_DATA = 0xF2   # P, DPL3, data, writable
ACCESS_TSS = 0x89         # P, DPL0, 32-bit available TSS
FLAGS_4K_32BIT = 0xC      # G=1 (4 KiB granularity), D/B=1 (32-bit)
GATE_INTERRUPT = 0x8E     # P, DPL0, 32-bit interrupt gate
GATE_INTERRUPT_USER = 0xEE  # the same with DPL3: "int3"/"into" allowed from ring 3

SEGMENT = struct.Struct("<HHBBBB")
GATE = struct.Struct("<HHBBH")
#: The 104-byte 32-bit TSS; only esp0/ss0 and the I/O map base matter here.
TSS = struct.Struct("<I II 22I HH")
TSS_SIZE = 104


def segment(base: int, limit: int, access: int, flags: int) -> bytes:
    return SEGMENT.pack(limit & 0xFFFF, base & 0xFFFF, (base >> 16) & 0xFF, access,
                        ((limit >> 16) & 0xF) | (flags << 4), (base >> 24) & 0xFF)


def gdt(tss_base: int) -> bytes:
    """Null, kernel code/data, user code/data, TSS: selectors 0x08 .. 0x28."""
    return b"".join([
        bytes(8),
        segment(0, 0xFFFFF, ACCESS_KERN_CODE, FLAGS_4K_32BIT),
        segment(0, 0xFFFFF, ACCESS_KERN_DATA, FLAGS_4K_32BIT),
        segment(0, 0xFFFFF, ACCESS_USER_CODE, FLAGS_4K_32BIT),
        segment(0, 0xFFFFF, ACCESS_USER_DATA, FLAGS_4K_32BIT),
        segment(tss_base, TSS_SIZE - 1, ACCESS_TSS, 0),
    ])


def tss(esp0: int) -> bytes:
    """A TSS whose only job is to give the ring-0 stack (esp0:ss0) and to deny
    all I/O ports (I/O map base beyond the limit)."""
    return TSS.pack(0, esp0, layout.SEL_KERN_DATA, *([0] * 22), 0, TSS_SIZE)


def gate(offset: int, selector: int, kind: int) -> bytes:
    return GATE.pack(offset & 0xFFFF, selector, 0, kind, offset >> 16)


def idt(handler_of: list[int]) -> bytes:
    """256 interrupt gates; #BP (3) and #OF (4) may be raised from ring 3."""
    return b"".join(
        gate(handler, layout.SEL_KERN_CODE,
             GATE_INTERRUPT_USER if vector in (3, 4) else GATE_INTERRUPT)
        for vector, handler in enumerate(handler_of))
