"""Instruction decoding (Capstone, the field's disassembler)."""

from __future__ import annotations


class Decoder:
    """Splits i386 machine code into instructions."""

    def __init__(self) -> None:
        import capstone

        self._cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)

    def count(self, code: bytes, address: int, upto: int | None = None) -> int:
        """How many instructions start in ``code`` (before ``upto`` if given)."""
        n = 0
        for insn_address, _size, _mnemonic, _ops in self._cs.disasm_lite(code, address):
            if upto is not None and insn_address >= upto:
                break
            n += 1
        return n

    def first(self, code: bytes, address: int) -> tuple[int, str, str] | None:
        """(size, mnemonic, operands) of the instruction at ``address``."""
        for _addr, size, mnemonic, ops in self._cs.disasm_lite(code, address):
            return size, mnemonic, ops
        return None
