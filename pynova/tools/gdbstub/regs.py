"""The i386 register file as gdb sees it over the remote protocol.

Decision: the stub describes exactly the 16 general registers that the
emulated user program has (eax ecx edx ebx esp ebp esi edi eip eflags cs ss
ds es fs gs, 32 bits each, little-endian, gdb numbers 0..15) in a target
description served by ``qXfer:features:read:target.xml``. Without it gdb
assumes the x87 and SSE registers as well; pynova's user programs have no
FPU state to show, so the stub would have to invent it. A ``g`` reply is
therefore 16 x 8 hex digits.
"""

from __future__ import annotations

import struct

from pynova.tools.gdbstub.hexutil import HexError, from_hex, to_hex

REGISTER_NAMES: tuple[str, ...] = (
    "eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi",
    "eip", "eflags", "cs", "ss", "ds", "es", "fs", "gs",
)  # fmt: skip
REGISTER_BYTES = 4
G_PACKET_BYTES = REGISTER_BYTES * len(REGISTER_NAMES)

Registers = dict[str, int]

_TYPES = {
    "esp": "data_ptr",
    "ebp": "data_ptr",
    "eip": "code_ptr",
    "eflags": "i386_eflags",
}

_EFLAGS_BITS = (
    (0, "CF"), (2, "PF"), (4, "AF"), (6, "ZF"), (7, "SF"), (8, "TF"),
    (9, "IF"), (10, "DF"), (11, "OF"), (14, "NT"), (16, "RF"), (17, "VM"),
    (18, "AC"), (19, "VIF"), (20, "VIP"), (21, "ID"),
)  # fmt: skip


def _reg_line(number: int, name: str) -> str:
    kind = _TYPES.get(name, "int32")
    return f'    <reg name="{name}" bitsize="32" type="{kind}" regnum="{number}"/>'


def _eflags_lines() -> list[str]:
    fields = [
        f'      <field name="{n}" start="{b}" end="{b}"/>' for b, n in _EFLAGS_BITS
    ]
    return ['    <flags id="i386_eflags" size="4">', *fields, "    </flags>"]


def target_xml() -> str:
    """The target description: i386, the 16 core registers and no more."""
    regs = [_reg_line(i, name) for i, name in enumerate(REGISTER_NAMES)]
    return "\n".join(
        [
            '<?xml version="1.0"?>',
            '<!DOCTYPE target SYSTEM "gdb-target.dtd">',
            '<target version="1.0">',
            "  <architecture>i386</architecture>",
            '  <feature name="org.gnu.gdb.i386.core">',
            *_eflags_lines(),
            *regs,
            "  </feature>",
            "</target>",
            "",
        ]
    )


def encode_register(value: int) -> str:
    """One register as 8 hex digits, little-endian (the ``p`` reply)."""
    return to_hex(struct.pack("<I", value & 0xFFFFFFFF))


def decode_register(text: str) -> int:
    """Parse 8 hex digits, little-endian, as sent in a ``P`` packet."""
    raw = from_hex(text)
    if len(raw) != REGISTER_BYTES:
        raise HexError(f"register value must be {REGISTER_BYTES} bytes, got {len(raw)}")
    return int(struct.unpack("<I", raw)[0])


def encode_registers(regs: Registers) -> str:
    """The ``g`` reply: all 16 registers in gdb order."""
    return "".join(encode_register(regs.get(name, 0)) for name in REGISTER_NAMES)


def decode_registers(text: str) -> Registers:
    """Parse a ``G`` payload; extra trailing registers gdb may send are ignored."""
    raw = from_hex(text)
    if len(raw) < G_PACKET_BYTES:
        raise HexError(f"G packet has {len(raw)} bytes, need {G_PACKET_BYTES}")
    values = struct.unpack(f"<{len(REGISTER_NAMES)}I", raw[:G_PACKET_BYTES])
    return dict(zip(REGISTER_NAMES, values, strict=True))


def register_name(number: int) -> str:
    """The name of gdb register ``number``; ``IndexError`` if none."""
    if not 0 <= number < len(REGISTER_NAMES):
        raise IndexError(f"no register number {number}")
    return REGISTER_NAMES[number]
