"""Tests for pynova.toolchain: building the user programs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pynova import toolchain
from pynova.toolchain import (
    ToolchainError,
    UnknownExample,
    build_examples,
    build_program,
    example_path,
    examples_dir,
    find_toolchain,
    list_examples,
)

from conftest import needs_toolchain

EXPECTED_EXAMPLES = {
    "hello",
    "pagefault",
    "sysmisc",
    "spin",
    "sysloop",
    "exit42",
    "bss",
    "textwrite",
    "kernelread",
    "unmapped_read",
    "jump_unmapped",
    "cli",
    "hlt",
    "outb",
    "divzero",
    "int3",
    "badprint",
}

#: bytes below stack_top that no example may load anything into
STACK_ROOM = 768

needs_binutils = pytest.mark.skipif(
    not (shutil.which("readelf") and shutil.which("nm")), reason="needs binutils"
)




@pytest.fixture
def build_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "build"
    monkeypatch.setenv("PYNOVA_BUILD_DIR", str(d))
    return d


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_examples(tmp_path_factory.mktemp("examples"))


def _nm(path: Path) -> dict[str, int]:
    out = subprocess.run(
        ["nm", str(path)], capture_output=True, text=True, check=True
    ).stdout
    symbols: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            symbols[parts[2]] = int(parts[0], 16)
    return symbols


def _load_segments(path: Path) -> list[tuple[int, int, str]]:
    """(vaddr, memsz, flags) of each PT_LOAD, from readelf -lW."""
    out = subprocess.run(
        ["readelf", "-lW", str(path)], capture_output=True, text=True, check=True
    ).stdout
    segs = []
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == "LOAD":
            segs.append((int(parts[2], 16), int(parts[5], 16), " ".join(parts[6:-1])))
    return segs


def _entry(path: Path) -> int:
    out = subprocess.run(
        ["readelf", "-h", str(path)], capture_output=True, text=True, check=True
    ).stdout
    m = re.search(r"Entry point address:\s+0x([0-9a-fA-F]+)", out)
    assert m, out
    return int(m.group(1), 16)


def test_list_examples_has_every_program_with_a_description() -> None:
    examples = dict(list_examples())
    assert set(examples) >= EXPECTED_EXAMPLES
    for name, desc in examples.items():
        assert desc, f"{name} has no description"
        assert "\n" not in desc and "*/" not in desc
        assert (examples_dir() / f"{name}.c").is_file()
    assert [n for n, _ in list_examples()] == sorted(examples)


def test_examples_readme_lists_every_program() -> None:
    readme = (examples_dir() / "README.md").read_text()
    for name, _ in list_examples():
        assert f"`{name}`" in readme


@needs_toolchain
def test_every_example_builds(built: dict[str, Path]) -> None:
    assert set(built) == {n for n, _ in list_examples()}
    for name, path in built.items():
        data = path.read_bytes()
        assert data[:4] == b"\x7fELF", name
        assert data[4] == 1, f"{name}: not ELFCLASS32"
        assert int.from_bytes(data[18:20], "little") == 3, f"{name}: not EM_386"


@needs_toolchain
@needs_binutils
def test_hello_layout(built: dict[str, Path]) -> None:
    hello = built["hello"]
    segs = _load_segments(hello)
    assert len(segs) == 2
    data, text = segs
    assert data[2] == "RW" and text[2] == "R E"
    assert data[0] >= 0x1000 and data[0] < 0x2000
    syms = _nm(hello)
    assert {"main", "_start", "stack_top"} <= set(syms)
    assert syms["stack_top"] == 0x2000
    assert _entry(hello) == syms["_start"]
    assert text[0] <= syms["_start"] < text[0] + text[1]


@needs_toolchain
@needs_binutils
def test_hello_has_debug_info(built: dict[str, Path]) -> None:
    out = subprocess.run(
        ["readelf", "-SW", str(built["hello"])],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert ".symtab" in out
    assert ".debug_info" in out
    assert ".debug_line" in out


@needs_toolchain
@needs_binutils
def test_fault_probes_can_be_located(built: dict[str, Path]) -> None:
    for name in ("cli", "hlt", "outb", "int3"):
        syms = _nm(built[name])
        assert "fault_insn" in syms, name
    # textwrite's target lives on a text page shared with no data.
    syms = _nm(built["textwrite"])
    target = syms["target"]
    assert target % 4096 == 0
    data, text = _load_segments(built["textwrite"])
    assert target // 4096 > (data[0] + data[1] - 1) // 4096
    assert text[0] <= target < text[0] + text[1]


@needs_toolchain
@needs_binutils
def test_pagefault_store_is_first_instruction_of_main(built: dict[str, Path]) -> None:
    main = _nm(built["pagefault"])["main"]
    out = subprocess.run(
        [
            "objdump",
            "-d",
            f"--start-address={main:#x}",
            f"--stop-address={main + 16:#x}",
            str(built["pagefault"]),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    insns = [line for line in out.splitlines() if re.match(r"\s+[0-9a-f]+:\s", line)]
    assert insns and "0x234" in insns[0], out


@needs_toolchain
@needs_binutils
def test_examples_leave_room_for_the_stack(built: dict[str, Path]) -> None:
    # The stack grows down from stack_top = 0x2000 through the page holding
    # the ELF headers, .data/.bss and the start of .text: nothing may be
    # loaded just below 0x2000, and the data segment is never empty.
    for name, path in built.items():
        data, text = _load_segments(path)
        assert data[0] >= 0x1000 and data[1] > 0, name
        for vaddr, memsz, _ in (data, text):
            end = vaddr + memsz
            overlap = vaddr < 0x2000 and end > 0x2000 - STACK_ROOM
            assert not overlap, f"{name}: segment {vaddr:#x}+{memsz:#x} in the stack"


@needs_toolchain
@needs_binutils
def test_programs_link_only_the_libc_they_use(built: dict[str, Path]) -> None:
    hello = _nm(built["hello"])
    assert "print" in hello and "pynova_libc" in hello
    assert "printf" not in hello
    assert "printf" in _nm(built["badprint"])


@needs_toolchain
def test_examples_compile_without_warnings(tmp_path: Path) -> None:
    tc = find_toolchain()
    for name, _ in list_examples():
        build_program(
            [examples_dir() / f"{name}.c"],
            tmp_path / name,
            toolchain=tc,
            extra_cflags=["-Werror", "-Wextra"],
        )


@needs_toolchain
def test_example_path_builds_into_build_dir_and_caches(build_dir: Path) -> None:
    path = example_path("hello")
    assert path.parent == build_dir
    assert path.is_file()
    before = path.stat().st_mtime_ns
    again = example_path("hello")
    assert again == path
    assert again.stat().st_mtime_ns == before
    # No temporary files are left behind.
    assert not [p for p in build_dir.iterdir() if p.name.endswith(".tmp")]


@needs_toolchain
def test_example_path_rebuilds_when_sources_change(
    build_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = example_path("hello")
    stamp_before = path.with_name(path.name + ".stamp").read_text()
    monkeypatch.setattr(toolchain, "_sources_hash", lambda: "different")
    assert example_path("hello") == path
    assert path.with_name(path.name + ".stamp").read_text() != stamp_before


@needs_toolchain
def test_default_cache_dir_is_under_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYNOVA_BUILD_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    path = example_path("exit42")
    assert path.parent.parent == tmp_path / ".cache" / "pynova"
    assert re.fullmatch(r"build-[0-9a-f]{12}", path.parent.name)


def test_unknown_example_lists_available_names(build_dir: Path) -> None:
    with pytest.raises(UnknownExample) as info:
        example_path("no-such-program")
    assert isinstance(info.value, KeyError)
    msg = str(info.value)
    assert "no-such-program" in msg
    for name in ("hello", "pagefault", "sysmisc"):
        assert name in msg


@needs_toolchain
def test_syntax_error_reports_compiler_message(tmp_path: Path) -> None:
    src = tmp_path / "broken.c"
    src.write_text("int main(void)\n{\n    return 0 +;\n}\n")
    with pytest.raises(ToolchainError) as info:
        build_program([src], tmp_path / "broken")
    msg = str(info.value)
    assert "broken.c:3" in msg
    assert "error" in msg
    assert not (tmp_path / "broken").exists()


@needs_toolchain
@needs_binutils
def test_build_program_with_extra_cflags(tmp_path: Path) -> None:
    out = build_program(
        [examples_dir() / "spin.c"],
        tmp_path / "spin-short",
        extra_cflags=["-DITER=1000"],
    )
    assert out == tmp_path / "spin-short"
    syms = _nm(out)
    assert {"main", "_start", "print"} <= set(syms)
    disasm = subprocess.run(
        ["objdump", "-d", f"--start-address={syms['main']:#x}", str(out)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "$0x3e8" in disasm  # ITER = 1000 reached the loop bound


def test_empty_path_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(ToolchainError) as info:
        find_toolchain()
    msg = str(info.value)
    assert "gcc" in msg and "clang" in msg
    assert "elf_i386" in msg
    assert "\n" not in msg


@needs_toolchain
def test_cli_builds_everything(tmp_path: Path) -> None:
    assert toolchain.main(["--outdir", str(tmp_path)]) == 0
    for name, _ in list_examples():
        assert (tmp_path / name).is_file()
