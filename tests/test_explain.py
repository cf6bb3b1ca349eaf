"""Fault explanations: error code, page walk, instruction and symbol."""

from __future__ import annotations

from pynova.machine import Console
from pynova.runner import run_image
from pynova.toolchain import build_program, examples_dir
from pynova.tools.explain import Context, decode_error_code, stack_overflow
from pynova.tools.symbols import SymbolTable

from conftest import LAYOUT_2022, disassembly, pynova_cli, run_example, symbol


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


def test_stack_overflow_is_named(example):
    out = run_example("stackoverflow", explain=True)
    lines = why("stackoverflow")
    assert out.fault.cr2 < 0x1000 <= out.fault.cr2 + 0x1000
    assert lines[0].startswith("why: stack overflow: write to an unmapped page "
                               "(PTE 0x00000000: P=0), in depth+")
    report_esp = next(line for line in out.output.splitlines() if line.startswith("esi="))
    esp = int(report_esp.rsplit("esp=", 1)[1], 16)
    assert esp < 0x1000 + 128
    assert lines[1] == (f"  the stack is the page 0x1000-0x2000 below stack_top 0x2000; "
                        f"esp {esp:#x} ran off its bottom")
    assert lines[2].startswith("  error code 0x6: P=0 page not present, W/R=1 write")


def test_a_null_pointer_store_is_not_a_stack_overflow():
    # pagefault writes to 0x234, also just below the stack page, but with
    # esp at 0x1ffc, far from the stack's bottom.
    assert why("pagefault")[0].startswith("why: write to an unmapped page")


def test_stack_overflow_below_a_stack_top_of_0xc0000000(tmp_path):
    script = tmp_path / "layout.ld"
    script.write_text(LAYOUT_2022)
    program = build_program([examples_dir() / "stackoverflow.c"], tmp_path / "so",
                            linker_script=script)
    result = run_image(program.read_bytes(), "so", console=Console(), explain=True)
    assert 0xBFFFE000 <= result.fault.cr2 < 0xBFFFF000
    text = result.output
    assert "why: stack overflow: write to an unmapped page" in text
    assert "  the stack is the page 0xbffff000-0xc0000000 below stack_top 0xc0000000; esp " \
        in text


def test_stack_overflow_needs_esp_at_the_bottom():
    def ctx(esp: int) -> Context:
        return Context(None, SymbolTable([]), esp, 0x2000)  # type: ignore[arg-type]

    assert stack_overflow(0xFFC, ctx(0x1000)) is not None     # a push at the bottom
    assert stack_overflow(0x0, ctx(0x1000)) is not None       # a big frame's far end
    assert stack_overflow(0xFFC, ctx(0x1080)) is None         # esp not near the bottom
    assert stack_overflow(0x1000, ctx(0x1000)) is None        # inside the stack page
    assert stack_overflow(0x234, ctx(0x1FFC)) is None         # pagefault's store


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
    assert "why: write to an unmapped page" in pynova_cli("run", "example:pagefault").stdout
    plain = pynova_cli("run", "--no-explain", "example:pagefault")
    assert plain.returncode == 139 and "why:" not in plain.stdout
