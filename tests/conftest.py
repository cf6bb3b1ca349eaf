"""Shared fixtures: built example programs and quick ways to run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pynova.machine import Console
from pynova.machine.uc_abi import LIBRARY_ENV, PATCHED_LIBRARY
from pynova.runner import RunResult, run_image
from pynova.toolchain import ToolchainError, example_path, find_toolchain


def _have_toolchain() -> bool:
    try:
        find_toolchain()
    except ToolchainError:
        return False
    return True


#: Tests that build programs of their own; `make test` has already built the
#: examples, so a missing toolchain fails there loudly first.
needs_toolchain = pytest.mark.skipif(not _have_toolchain(), reason="no i386 toolchain")


@pytest.fixture(params=["patched", "wheel"])
def unicorn_library(request, monkeypatch) -> str:
    """Run the test once on each libunicorn: pynova's patched build (skipped
    when `make` could not build it) and the wheel's."""
    if request.param == "patched":
        if not Path(PATCHED_LIBRARY).exists():
            pytest.skip("the patched libunicorn is not built (make libunicorn)")
        monkeypatch.setenv(LIBRARY_ENV, PATCHED_LIBRARY)
    else:
        monkeypatch.setenv(LIBRARY_ENV, "wheel")
    return request.param

#: A linker script like the course's 2022 one: text at 0x1000, data after
#: it, and stack_top = 0xC0000000 (the kernel maps the stack at 0xBFFFF000).
LAYOUT_2022 = """OUTPUT_FORMAT("elf32-i386")
ENTRY(_start)
PHDRS { text PT_LOAD FLAGS(5); data PT_LOAD FLAGS(6); }
SECTIONS
{
    . = 0x1000 + SIZEOF_HEADERS;
    .text : { *(.text .text.*) } :text
    . = ALIGN(0x1000);
    .data : { *(.data .data.*) } :data
    .rodata : { *(.rodata .rodata.*) } :data
    .bss : { *(.bss .bss.*) *(COMMON) } :data
    stack_top = 0xC0000000;
    /DISCARD/ : { *(.comment) *(.note*) *(.eh_frame*) }
}
"""


@pytest.fixture(scope="session")
def example():
    """example('hello') -> Path of the built bundled example."""
    return example_path


def run_example(name: str, **kwargs) -> RunResult:
    return run_image(example_path(name).read_bytes(), name, console=Console(), **kwargs)


@pytest.fixture
def run():
    return run_example


def symbol(path: Path, name: str) -> int:
    """Address of a symbol, as binutils nm shows it."""
    out = subprocess.run(["nm", str(path)], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    raise KeyError(name)


def address_of_bytes(path: Path, data: bytes) -> int:
    """Virtual address of the first copy of ``data`` in a loaded segment
    (a string literal has no symbol of its own)."""
    from pynova.kernel.elf import PT_LOAD, check_header, program_headers

    image = path.read_bytes()
    for ph in program_headers(image, check_header(image)):
        found = image.find(data, ph.offset, ph.offset + ph.filesz)
        if ph.type == PT_LOAD and found >= 0:
            return ph.vaddr + found - ph.offset
    raise KeyError(data)


def disassembly(path: Path) -> list[tuple[int, str]]:
    """(address, instruction text) for every instruction, from objdump -d."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(path)], check=True,
                         capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        head, sep, text = line.partition(":\t")
        if sep and head.strip() and all(c in "0123456789abcdef" for c in head.strip()):
            rows.append((int(head.strip(), 16), text.strip()))
    return rows


def pynova_cli(*args: str, timeout: float = 60,
               cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pynova", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)
