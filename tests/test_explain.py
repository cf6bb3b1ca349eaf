"""Fault explanations: error code, page walk, instruction and symbol."""

from __future__ import annotations

from pynova.tools.explain import decode_error_code
from pynova.tools.symbols import SymbolTable

from conftest import disassembly, pynova_cli, run_example, symbol


def why(name: str) -> list[str]:
    out = run_example(name, explain=True).output.splitlines()
    first = next(i for i, line in enumerate(out) if line.startswith("why: "))
    assert out[first - 1].startswith(("User PF", "User EXC"))  # after the report lines
    return out[first:]


def test_write_to_the_text_segment(example):
    text = "\n".join(why("textwrite"))
    assert text.startswith("why: write to a read-only page (PTE 0x")
    target = symbol(example("textwrite"), "target")
    assert f": RW=0), in main: mov dword ptr [{target:#x}], 0x12" in text
    assert "P=1 protection violation, W/R=1 write, U/S=1 user mode" in text


def test_read_of_kernel_memory():
    lines = why("kernelread")
    assert lines[0] == ("why: read of a supervisor-only page (PDE 0x000001e3: US=0), "
                        "in main: mov eax, dword ptr [0xc0000000]")
    assert "PDE[768]" in lines[2]


def test_read_of_an_unmapped_page():
    lines = why("unmapped_read")
    assert lines[0].startswith("why: read of an unmapped address (PDE 0x00000000: P=0")
    assert lines[0].endswith("in main: mov eax, dword ptr [0x40000000]")
    assert "P=0 page not present, W/R=0 read" in lines[1]


def test_jump_to_an_unmapped_address_is_an_instruction_fetch(example):
    lines = why("jump_unmapped")
    assert lines[0].startswith("why: instruction fetch from an unmapped address 0x50000000")
    call = next(addr for addr, text in disassembly(example("jump_unmapped"))
                if text.startswith("call") and "*%eax" in text)
    offset = call - symbol(example("jump_unmapped"), "main")
    assert lines[0].endswith(f"called from main+{offset:#x}: call eax")
    assert "I/D=0 instruction fetch (I/D stays 0 without NX" in lines[1]


def test_privileged_instructions_name_fault_insn():
    assert why("cli")[0] == ("why: privileged instruction cli in user mode (CPL 3, IOPL 0), "
                             "in main <fault_insn>: cli")
    assert why("outb")[0].endswith("in fault_insn: out 0x80, al")


def test_other_vectors():
    assert why("hello")[0] == ("why: invalid opcode ud2: main returned into start.S, which "
                               "ends in ud2, in _start+0xa: ud2")
    assert why("divzero")[0].startswith("why: divide error")
    assert "idiv ecx" in why("divzero")[0]
    assert why("int3")[0].endswith("in main <fault_insn>: int3")


def test_decode_error_code_bits():
    assert decode_error_code(0x7, False) == ("error code 0x7: P=1 protection violation, "
                                             "W/R=1 write, U/S=1 user mode, I/D=0 data access")
    assert "I/D=1 instruction fetch" in decode_error_code(0x14, True)


def test_symbols(example):
    table = SymbolTable.from_elf(example("pagefault").read_bytes())
    main = symbol(example("pagefault"), "main")
    assert table.describe(main) == "main" and table.describe(main + 3) == "main+0x3"
    assert SymbolTable.from_elf(b"garbage").describe(0x2000) is None


def test_cli_explains_and_can_be_told_not_to():
    assert "why: write to an unmapped page" in pynova_cli("run", "pagefault").stdout
    plain = pynova_cli("run", "--no-explain", "pagefault")
    assert plain.returncode == 139 and "why:" not in plain.stdout
