"""Issue 2: the loader's checks, page tables read back from guest RAM."""

from __future__ import annotations

import pytest

from pynova.kernel.elf import EH, PH
from pynova.kernel.kernel import KernelPanic
from pynova.kernel.layout import align_up as layout_align_up
from pynova.kernel.ptab import LARGE, PRESENT, RW, USER
from pynova.machine import Console, Machine
from pynova.runner import boot, run_image
from pynova.toolchain import build_program, example_path, examples_dir

from conftest import LAYOUT_2022, pynova_cli, symbol


def hello_image() -> bytearray:
    return bytearray(example_path("hello").read_bytes())


def patch_eh(image: bytearray, **fields) -> bytearray:
    names = ["ident", "type", "machine", "version", "entry", "phoff", "shoff", "flags",
             "ehsize", "phentsize", "phnum", "shentsize", "shnum", "shstrndx"]
    values = dict(zip(names, EH.unpack_from(image), strict=False))
    values.update(fields)
    EH.pack_into(image, 0, *(values[n] for n in names))
    return image


def patch_ph(image: bytearray, index: int, **fields) -> bytearray:
    names = ["type", "offset", "vaddr", "paddr", "filesz", "memsz", "flags", "align"]
    phoff = EH.unpack_from(image)[5]
    values = dict(zip(names, PH.unpack_from(image, phoff + index * PH.size), strict=False))
    values.update(fields)
    PH.pack_into(image, phoff + index * PH.size, *(values[n] for n in names))
    return image


def text_index(image: bytearray) -> int:
    phoff, phnum = EH.unpack_from(image)[5], EH.unpack_from(image)[10]
    return next(i for i in range(phnum) if PH.unpack_from(image, phoff + i * PH.size)[6] & 1)


def grow_text(image: bytearray) -> bytearray:
    """A 1.5 MiB zero-filled tail after the text: less than 2 MiB of RAM
    (the loader's cap), more than the frames left free in it."""
    return patch_ph(image, text_index(image), memsz=0x180000)


def ident(image: bytearray, pos: int, value: int) -> bytearray:
    image[pos] = value
    return image


MALFORMED = {
    "bad magic": (lambda im: ident(im, 1, ord("X")), "bad magic"),
    "64-bit class": (lambda im: ident(im, 4, 2), "is not 32-bit"),
    "big-endian": (lambda im: ident(im, 5, 2), "is not little-endian"),
    "ET_DYN": (lambda im: patch_eh(im, type=3), "type DYN is not an executable"),
    "wrong machine": (lambda im: patch_eh(im, machine=62), "machine 62 is not i386"),
    "truncated header": (lambda im: im[:40], "truncated ELF header"),
    "phdrs outside file": (lambda im: patch_eh(im, phoff=len(im) - 8), "lie outside the file"),
    "phentsize": (lambda im: patch_eh(im, phentsize=56), "program header size 56"),
    "kernel space": (lambda im: patch_ph(im, text_index(im), vaddr=0xC0000000),
                     "reaches kernel space"),
    "page 0": (lambda im: patch_ph(im, text_index(im), vaddr=0x0), "covers page 0"),
    "misaligned offset": (lambda im: patch_ph(im, text_index(im), offset=0x1004),
                          "differ modulo the page size"),
    "filesz > memsz": (lambda im: patch_ph(im, 0, filesz=0x5000), "exceeds memory size"),
    "outside module": (lambda im: patch_ph(im, text_index(im), filesz=0x100000,
                                           memsz=0x100000), "lie outside the module"),
    "no PT_LOAD": (lambda im: patch_ph(patch_ph(im, 0, type=4), 1, type=4),
                   "no loadable (PT_LOAD) segment"),
    "entry outside": (lambda im: patch_eh(im, entry=0x40000000), "entry point 0x40000000"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_elf_is_rejected_with_its_reason(case):
    mutate, reason = MALFORMED[case]
    image = bytes(mutate(hello_image()))
    result = run_image(image, "bad", console=Console())
    last = result.output.splitlines()[-1]
    assert last.startswith("ELF error: ") and reason in last, last
    assert (result.status, result.reason) == (126, "elf")
    assert "Hello world!" not in result.output


def test_rejected_elf_leaves_no_frame_allocated():
    image = bytes(patch_ph(hello_image(), 0, filesz=0x5000))
    with Machine(8 << 20, Console()) as machine:
        with pytest.raises(KernelPanic) as err:
            boot(machine, [(image, "bad")])
        assert err.value.status == 126
    # A plan that passes but cannot be committed: too little RAM for the
    # page tables, rolled back whole.
    with Machine(2 << 20, Console()) as machine:
        big = bytes(grow_text(hello_image()))
        with pytest.raises(KernelPanic) as err:
            boot(machine, [(big, "big")])
        assert err.value.status == 125
        assert "out of memory" in str(err.value)


def test_out_of_memory_during_load_gives_every_frame_back():
    from pynova.kernel import Kernel
    from pynova.kernel.layout import KERNEL_END, MBI_PHYS

    big = bytes(grow_text(hello_image()))
    with Machine(2 << 20, Console()) as machine:
        kernel = Kernel(machine)
        kernel.boot(machine.load_multiboot([(big, "big")], MBI_PHYS, KERNEL_END))
        before = kernel.kalloc.free_count
        with pytest.raises(KernelPanic):
            kernel.root_invoke()
        assert kernel.kalloc.free_count == before
        assert kernel.pd is None


@pytest.mark.parametrize("count", [0, 2])
def test_the_kernel_wants_exactly_one_module(count):
    image = bytes(hello_image())
    result = run_image(image, "hello", console=Console(), modules=[(image, "m")] * count)
    assert result.output.splitlines()[-1] == f"boot error: need exactly one module, got {count}"
    assert result.status == 125


def test_cli_rejects_a_bad_file_in_one_line_without_traceback(tmp_path):
    bad = tmp_path / "bad.elf"
    bad.write_bytes(b"\x7fELF" + bytes(10))
    proc = pynova_cli("run", str(bad))
    assert proc.returncode == 126
    assert proc.stdout.splitlines()[-1] == "ELF error: truncated ELF header: 14 bytes, need 52"
    assert proc.stderr == ""


# ------------------------------------------------------------ page tables
@pytest.fixture
def hello_kernel():
    with Machine(16 << 20, Console()) as machine:
        yield boot(machine, [(example_path("hello").read_bytes(), "hello")])


def test_page_tables_after_loading_hello(hello_kernel):
    ptab = hello_kernel.pd.ptab
    mem = hello_kernel.memory
    stack, data, text = ptab.walk(0x1000), ptab.walk(0x2000), ptab.walk(0x3000)
    assert text.pte & (PRESENT | USER | RW) == PRESENT | USER
    assert data.pte & (PRESENT | USER | RW) == PRESENT | USER | RW
    assert stack.pte & (PRESENT | USER | RW) == PRESENT | USER | RW
    assert not ptab.walk(0x0).present
    assert not ptab.walk(0x4000).present
    # The PTEs are real words in guest RAM at the addresses the walk names.
    assert mem.r32(text.pte_addr) == text.pte
    assert mem.r32(ptab.root + 0) == text.pde
    # Data and text are the module's own frames, not copies; the stack page
    # is a fresh frame of its own.
    module = hello_kernel.boot_info.modules[0]
    assert data.pte & ~0xFFF == module.start
    assert text.pte & ~0xFFF == module.start + 0x1000
    assert not module.start <= stack.pte & ~0xFFF < layout_align_up(module.end)
    assert mem.read(stack.pte & ~0xFFF, 0x1000) == bytes(0x1000)
    # The kernel half: large supervisor pages, no USER bit anywhere.
    for virt in (0xC0000000, 0xC0100000, 0xC0400000):
        walk = ptab.walk(virt)
        assert walk.pde & (PRESENT | LARGE) == PRESENT | LARGE
        assert not walk.pde & USER
    # CR3 names this directory once the task runs.
    hello_kernel.run()
    assert hello_kernel.cpu.read_cr(3) == ptab.root


def test_private_copy_hides_file_bytes_past_filesz(hello_kernel):
    # Cut the data segment short: the bytes after filesz are non-zero in the
    # file, but must read as zero (.bss) in the task.
    image = hello_image()
    phoff = EH.unpack_from(image)[5]
    _type, offset, vaddr, _p, filesz, memsz, _f, _a = PH.unpack_from(image, phoff)
    tail = image[offset + filesz - 4: offset + filesz]
    assert any(tail), "the data segment's last bytes should be non-zero"
    patch_ph(image, 0, filesz=filesz - 4)
    with Machine(16 << 20, Console()) as machine:
        kernel = boot(machine, [(bytes(image), "cut")])
        assert kernel.pd.read_user(vaddr + filesz - 4, 4) == b"\0\0\0\0"
        module = kernel.boot_info.modules[0]
        assert machine.memory.read(module.start + offset + filesz - 4, 4) == bytes(tail)
        frame = kernel.pd.ptab.walk(vaddr & ~0xFFF).pte & ~0xFFF
        assert frame != module.start  # a private copy, not the module's page


def test_shared_page_gets_the_union_of_rights(tmp_path):
    # A linker script without the page alignment makes .data and .text meet
    # inside one page, as the original course's script did.
    script = (examples_dir().parent / "linker.ld").read_text()
    (tmp_path / "shared.ld").write_text(script.replace(". = ALIGN(0x1000);", ""))
    src = tmp_path / "g.c"
    src.write_text('#include "pynova.h"\nint g = 1;\n'
                   'int main(void) { g = 41; g++; printf("g=%d\\n", g); exit(g); }\n')
    out = tmp_path / "g"
    build_program([src], out, linker_script=tmp_path / "shared.ld")
    main = symbol(out, "main")
    g = symbol(out, "g")
    assert main >> 12 == g >> 12 == 2, "text and data should share page 0x2000"
    with Machine(16 << 20, Console()) as machine:
        kernel = boot(machine, [(out.read_bytes(), "g")])
        walk = kernel.pd.ptab.walk(0x2000)
        assert walk.pte & (PRESENT | USER | RW) == PRESENT | USER | RW
        outcome = kernel.run()
    assert outcome.status == 42 and "g=42" in machine.console.output


def test_seed_step_one_lines_name_each_segment_then_the_stack():
    out = run_image(example_path("hello").read_bytes(), "hello", console=Console()).output
    lines = out.splitlines()
    assert lines[2].startswith("load module from ")  # the seed's line comes first
    segs = [line.split() for line in lines if line.startswith("  segment")]
    assert [s[2] for s in segs] == ["0x00002000", "0x00003000"]
    assert [s[-1] for s in segs] == ["rw-", "r-x"]
    assert lines[5] == ("  stack   virt 0x00001000 size 0x1000 rw- "
                        "(fresh page below stack_top 0x2000)")


# ------------------------------------------------------------ the stack page
STACK_C = r"""#include "pynova.h"
static int sum_down(int n)
{
    volatile int pad[16];
    pad[0] = n;
    return n ? pad[0] + sum_down(n - 1) : 0;
}
int main(void)
{
    int local;
    char *p = malloc(100000);
    if (!p)
        exit(2);
    memset(p, 7, 100000);
    printf("stack %p heap %p sum %d\n", (void *)&local, (void *)p, sum_down(20));
    exit(p[99999] == 7 ? 0 : 3);
}
"""


def stack_program(tmp_path, script: str | None = None):
    src = tmp_path / "stack.c"
    src.write_text(STACK_C)
    ld = None
    if script is not None:
        ld = tmp_path / "layout.ld"
        ld.write_text(script)
    return build_program([src], tmp_path / "stack", linker_script=ld)


def test_a_program_linked_for_the_2022_layout_gets_its_stack_below_0xc0000000(tmp_path):
    program = stack_program(tmp_path, LAYOUT_2022)
    assert symbol(program, "main") >> 12 == 1 and symbol(program, "stack_top") == 0xC0000000
    result = run_image(program.read_bytes(), "stack", console=Console())
    lines = result.output.splitlines()
    assert ("  stack   virt 0xbffff000 size 0x1000 rw- (fresh page below stack_top 0xc0000000)"
            in lines)
    said = next(line for line in lines if line.startswith("stack "))
    local, heap = (int(word, 16) for word in said.split()[1:4:2])
    assert 0xBFFFF000 <= local < 0xC0000000 and heap < 0x100000
    assert said.endswith("sum 210") and (result.status, result.reason) == (0, "exit")
    with Machine(16 << 20, Console()) as machine:
        kernel = boot(machine, [(program.read_bytes(), "stack")])
        walk = kernel.pd.ptab.walk(0xBFFFF000)
        assert walk.pte & (PRESENT | USER | RW) == PRESENT | USER | RW
        assert kernel.current.regs.esp == 0xC0000000
        assert not kernel.pd.ptab.walk(0).present


def test_without_a_stack_top_symbol_the_stack_is_below_0x2000(tmp_path):
    image = bytearray(stack_program(tmp_path).read_bytes())
    patch_eh(image, shoff=0, shnum=0, shstrndx=0)  # no section headers: no symbols
    result = run_image(bytes(image), "stripped", console=Console())
    assert ("  stack   virt 0x00001000 size 0x1000 rw- (fresh page below 0x2000: the file has "
            "no stack_top symbol)") in result.output.splitlines()
    assert result.status == 0 and "sum 210" in result.output


def test_a_stack_top_inside_a_segment_uses_that_segments_page(tmp_path):
    script = (examples_dir().parent / "linker.ld").read_text()
    program = stack_program(tmp_path, script.replace("stack_top = .;", "stack_top = 0x3000;"))
    with Machine(16 << 20, Console()) as machine:
        kernel = boot(machine, [(program.read_bytes(), "inside")])
        assert ("  stack   virt 0x00002000 size 0x1000 rw- (inside a loaded segment below "
                "stack_top 0x3000)") in machine.console.output.splitlines()
        assert not kernel.pd.ptab.walk(0x1000).present  # no page of its own
        assert kernel.current.regs.esp == 0x3000


@pytest.mark.parametrize("value", ["0x1000", "0xC0001000"])
def test_a_stack_top_with_no_user_page_below_it_is_an_elf_error(tmp_path, value):
    script = (examples_dir().parent / "linker.ld").read_text()
    program = stack_program(tmp_path, script.replace("stack_top = .;",
                                                     f"stack_top = {value};"))
    result = run_image(program.read_bytes(), "bad", console=Console())
    assert (result.status, result.reason) == (126, "elf")
    assert result.output.splitlines()[-1] == (
        f"ELF error: stack_top {int(value, 16):#x} leaves no user page for the stack "
        f"(it must lie in 0x1001..0xc0000000)")


def test_a_module_larger_than_ram_is_a_boot_error(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(3 << 20))
    proc = pynova_cli("run", str(big), "--mem", "2M")
    assert proc.returncode == 125
    assert proc.stdout.strip() == \
        "boot error: module of 3145728 bytes does not fit into 2 MiB of RAM"
    assert proc.stderr == ""


def test_a_directory_is_not_a_program(tmp_path):
    proc = pynova_cli("run", str(tmp_path))
    assert proc.returncode == 127 and proc.stderr.strip().endswith("is a directory")


def test_a_stack_page_above_the_segments_puts_the_heap_above_it(tmp_path):
    # The heap must not grow into the stack page: its break starts above it.
    script = (examples_dir().parent / "linker.ld").read_text()
    program = stack_program(tmp_path, script.replace("stack_top = .;", "stack_top = 0x20000;"))
    with Machine(16 << 20, Console()) as machine:
        kernel = boot(machine, [(program.read_bytes(), "high")])
        assert kernel.pd.ptab.walk(0x1F000).pte & (PRESENT | RW) == PRESENT | RW
        assert kernel.pd.initial_break == kernel.pd.brk == 0x20000
        outcome = kernel.run()
    assert outcome.status == 0 and "sum 210" in machine.console.output
