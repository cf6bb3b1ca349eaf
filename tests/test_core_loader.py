"""Issue 2: the loader's checks, page tables read back from guest RAM."""

from __future__ import annotations

import struct

import pytest

from pynova.kernel.elf import EH, PH
from pynova.kernel.kernel import KernelPanic
from pynova.kernel.ptab import LARGE, PRESENT, RW, USER
from pynova.machine import Console, Machine
from pynova.runner import boot, run_image
from pynova.toolchain import build_program, example_path

from conftest import pynova_cli, symbol


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
    text, data = ptab.walk(0x2000), ptab.walk(0x1000)
    assert text.pte & (PRESENT | USER | RW) == PRESENT | USER
    assert data.pte & (PRESENT | USER | RW) == PRESENT | USER | RW
    assert not ptab.walk(0x0).present
    assert not ptab.walk(0x3000).present
    # The PTEs are real words in guest RAM at the addresses the walk names.
    assert mem.r32(text.pte_addr) == text.pte
    assert mem.r32(ptab.root + 0) == text.pde
    # The text page is the module's own frame, not a copy.
    module = hello_kernel.boot_info.modules[0]
    assert text.pte & ~0xFFF == module.start + 0x1000
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
        frame = kernel.pd.ptab.walk(0x1000).pte & ~0xFFF
        assert frame != module.start  # a private copy, not the module's page


def test_shared_page_gets_the_union_of_rights(tmp_path):
    # A linker script without the page alignment makes .data and .text meet
    # inside one page, as the original course's script did.
    from pynova.toolchain import examples_dir
    script = (examples_dir().parent / "linker.ld").read_text()
    (tmp_path / "shared.ld").write_text(script.replace(". = ALIGN(0x1000);", ""))
    src = tmp_path / "g.c"
    src.write_text('#include "pynova.h"\nint g = 1;\n'
                   'int main(void) { g = 41; g++; printf("g=%d\\n", g); exit(g); }\n')
    out = tmp_path / "g"
    build_program([src], out, linker_script=tmp_path / "shared.ld")
    main = symbol(out, "main")
    g = symbol(out, "g")
    assert main >> 12 == g >> 12 == 1, "text and data should share page 0x1000"
    with Machine(16 << 20, Console()) as machine:
        kernel = boot(machine, [(out.read_bytes(), "g")])
        walk = kernel.pd.ptab.walk(0x1000)
        assert walk.pte & (PRESENT | USER | RW) == PRESENT | USER | RW
        outcome = kernel.run()
    assert outcome.status == 42 and "g=42" in machine.console.output


def test_seed_step_one_lines_name_each_segment():
    out = run_image(example_path("hello").read_bytes(), "hello", console=Console()).output
    segs = [line.split() for line in out.splitlines() if line.startswith("  segment")]
    assert [s[2] for s in segs] == ["0x00001000", "0x00002000"]
    assert [s[-1] for s in segs] == ["rw-", "r-x"]
    struct.calcsize("<I")


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
