"""The i386 register file as gdb sees it over the remote protocol.

Decision: the ``g`` packet carries exactly the 16 general registers (eax
ecx edx ebx esp ebp esi edi eip eflags cs ss ds es fs gs, 32 bits each,
little-endian, gdb numbers 0..15), 16 x 8 hex digits.

The target description (``qXfer:features:read:target.xml``) cannot stop at
those 16: gdb 13 checks that the ``org.gnu.gdb.i386.core`` feature also
holds the x87 registers (numbers 16..31: st0..st7, fctrl .. fop) and
otherwise prints "Architecture rejected target-supplied description" and
falls back to its default i386 description with SSE as well. So the
description lists the 16 general plus the 16 x87 registers, and no SSE
feature. The x87 registers are not in the ``g`` reply (gdb accepts a short
one) and a ``p`` for them answers "unavailable" (``x`` digits), which gdb
shows as ``<unavailable>``: pynova does not expose FPU state.

The description also says ``<osabi>GNU/Linux</osabi>`` with the
``org.gnu.gdb.i386.linux`` feature (register 32, ``orig_eax``): only then
does gdb know a ``siginfo`` type, so that ``p $_siginfo`` shows the fault
address of a SIGSEGV (served by ``qXfer:siginfo:read``). pynova's user ABI
is not Linux's, but nothing else in gdb depends on it for a static program.
``orig_eax`` reads as -1 and writes to it (gdb sets it to -1 whenever it
changes eip) are accepted and ignored.
"""

from __future__ import annotations

import struct

from pynova.tools.gdbstub.hexutil import HexError, from_hex, to_hex

REGISTER_NAMES: tuple[str, ...] = (
    "eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi",
    "eip", "eflags", "cs", "ss", "ds", "es", "fs", "gs",
)  # fmt: skip
REGISTER_BYTES = 4
_X87_CONTROL = ("fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop")
#: The x87 registers gdb's i386 core feature requires, with their bit sizes.
X87_REGISTERS: tuple[tuple[str, int], ...] = (
    *((f"st{i}", 80) for i in range(8)),
    *((name, 32) for name in _X87_CONTROL),
)
#: gdb number of ``orig_eax`` (feature org.gnu.gdb.i386.linux), see below.
ORIG_EAX = len(REGISTER_NAMES) + len(X87_REGISTERS)
#: What ``orig_eax`` reads as: -1, "not inside a system call".
ORIG_EAX_VALUE = 0xFFFFFFFF
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


def _x87_line(number: int, name: str, bits: int) -> str:
    kind = "i387_ext" if bits == 80 else 'int" group="float'
    return f'    <reg name="{name}" bitsize="{bits}" type="{kind}" regnum="{number}"/>'


def _eflags_lines() -> list[str]:
    fields = [f'      <field name="{n}" start="{b}" end="{b}"/>' for b, n in _EFLAGS_BITS]
    return ['    <flags id="i386_eflags" size="4">', *fields, "    </flags>"]


def target_xml() -> str:
    """The target description: i386, the general and the x87 registers."""
    regs = [_reg_line(i, name) for i, name in enumerate(REGISTER_NAMES)]
    first_x87 = len(REGISTER_NAMES)
    regs += [_x87_line(first_x87 + i, *reg) for i, reg in enumerate(X87_REGISTERS)]
    return "\n".join(
        [
            '<?xml version="1.0"?>',
            '<!DOCTYPE target SYSTEM "gdb-target.dtd">',
            '<target version="1.0">',
            "  <architecture>i386</architecture>",
            "  <osabi>GNU/Linux</osabi>",
            '  <feature name="org.gnu.gdb.i386.core">',
            *_eflags_lines(),
            *regs,
            "  </feature>",
            '  <feature name="org.gnu.gdb.i386.linux">',
            f'    <reg name="orig_eax" bitsize="32" type="int" regnum="{ORIG_EAX}"/>',
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


def read_extra_register(number: int) -> str:
    """The ``p`` reply for a register outside the ``g`` block.

    x87 registers are unavailable (``x`` digits of their size); ``orig_eax``
    is -1. ``IndexError`` for any other number.
    """
    if number == ORIG_EAX:
        return encode_register(ORIG_EAX_VALUE)
    index = number - len(REGISTER_NAMES)
    if not 0 <= index < len(X87_REGISTERS):
        raise IndexError(f"no register number {number}")
    return "x" * (X87_REGISTERS[index][1] // 4)
