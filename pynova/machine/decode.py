"""Instruction decoding with Capstone, the field's disassembler.

Like uc_abi.py for Unicorn, this calls the libcapstone that the ``capstone``
wheel ships through ctypes: the Python binding's import costs about 90 ms,
more than a whole boot, and a fault report needs one instruction.
"""

from __future__ import annotations

import ctypes

from pynova.machine.native import packaged_library

# capstone.h (Capstone 5): cs_arch, cs_mode.
CS_ARCH_X86 = 3
CS_MODE_32 = 1 << 2


class CsInsn(ctypes.Structure):
    """cs_insn of capstone.h."""

    _fields_ = [
        ("id", ctypes.c_uint),
        ("address", ctypes.c_uint64),
        ("size", ctypes.c_uint16),
        ("bytes", ctypes.c_uint8 * 24),
        ("mnemonic", ctypes.c_char * 32),
        ("op_str", ctypes.c_char * 160),
        ("detail", ctypes.c_void_p),
    ]


class DecoderMissing(RuntimeError):
    """The capstone package (and so libcapstone) is not installed."""


def library_path() -> str:
    path = packaged_library("capstone", ("libcapstone.so", "libcapstone.so.5",
                                         "libcapstone.dylib", "capstone.dll"))
    if path is None:
        raise DecoderMissing("libcapstone not found: install the 'capstone' package")
    return path


class Decoder:
    """Splits i386 machine code into instructions."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(library_path())
        lib.cs_open.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_size_t)]
        lib.cs_disasm.argtypes = [ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
                                  ctypes.c_uint64, ctypes.c_size_t,
                                  ctypes.POINTER(ctypes.POINTER(CsInsn))]
        lib.cs_disasm.restype = ctypes.c_size_t
        lib.cs_free.argtypes = [ctypes.POINTER(CsInsn), ctypes.c_size_t]
        lib.cs_close.argtypes = [ctypes.POINTER(ctypes.c_size_t)]
        self._lib = lib
        self._handle = ctypes.c_size_t()
        if lib.cs_open(CS_ARCH_X86, CS_MODE_32, ctypes.byref(self._handle)) != 0:
            raise DecoderMissing("capstone cannot decode i386 code")

    def disassemble(self, code: bytes, address: int,
                    count: int = 0) -> list[tuple[int, int, str, str]]:
        """(address, size, mnemonic, operands) of each instruction in ``code``,
        up to the first undecodable byte (or ``count`` instructions)."""
        insns = ctypes.POINTER(CsInsn)()
        n = self._lib.cs_disasm(self._handle, code, len(code), address, count,
                                ctypes.byref(insns))
        try:
            return [(insns[i].address, insns[i].size, insns[i].mnemonic.decode(),
                     insns[i].op_str.decode()) for i in range(n)]
        finally:
            if n:
                self._lib.cs_free(insns, n)

    def count(self, code: bytes, address: int, upto: int | None = None) -> int:
        """How many instructions start in ``code`` (before ``upto`` if given)."""
        return sum(1 for addr, *_ in self.disassemble(code, address)
                   if upto is None or addr < upto)

    def first(self, code: bytes, address: int) -> tuple[int, str, str] | None:
        """(size, mnemonic, operands) of the instruction at ``address``."""
        found = self.disassemble(code, address, 1)
        return (found[0][1], found[0][2], found[0][3]) if found else None

    def close(self) -> None:
        if self._handle.value:
            self._lib.cs_close(ctypes.byref(self._handle))
            self._handle = ctypes.c_size_t()

    def __del__(self) -> None:
        self.close()
