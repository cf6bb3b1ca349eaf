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
    "stackoverflow",
}

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
def test_hello_layout_is_the_seeds(built: dict[str, Path]) -> None:
    # The seed's nm: 00002000 D stack_top, 00003000 T main (our start.S's
    # _start comes first at 0x3000, as in the reference kernel's run).
    hello = built["hello"]
    segs = _load_segments(hello)
    assert len(segs) == 2
    data, text = segs
    assert data[2] == "RW" and text[2] == "R E"
    assert 0x2000 <= data[0] < 0x3000 and text[0] == 0x3000
    syms = _nm(hello)
    assert {"main", "_start", "stack_top"} <= set(syms)
    assert syms["stack_top"] == 0x2000
    assert syms["_start"] == 0x3000 and 0x3000 < syms["main"] < 0x3100
    assert _entry(hello) == syms["_start"]


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
def test_the_stack_page_is_the_stacks_alone(built: dict[str, Path]) -> None:
    # Page 0x1000 (below stack_top = 0x2000) holds no byte of any segment;
    # data starts at 0x2000 and is never empty; text follows it page-aligned.
    for name, path in built.items():
        data, text = _load_segments(path)
        assert _nm(path)["stack_top"] == 0x2000, name
        assert 0x2000 <= data[0] < 0x3000 and data[1] > 0, name
        assert text[0] % 0x1000 == 0 and text[0] >= data[0] + data[1], name


@needs_toolchain
@needs_binutils
def test_programs_link_only_the_libc_they_use(built: dict[str, Path]) -> None:
    hello = _nm(built["hello"])
    assert "print" in hello and "pynova_libc" in hello
    assert "printf" not in hello
    assert "printf" in _nm(built["badprint"])


@needs_toolchain
def test_examples_and_libc_compile_without_warnings(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    tc = find_toolchain()
    libc = sorted((examples_dir().parent / "libc").glob("*.c"))
    sources = [*(examples_dir() / f"{name}.c" for name, _ in list_examples()), *libc]
    with ThreadPoolExecutor(max_workers=4) as pool:
        said = list(pool.map(lambda i: tc.compile(sources[i], tmp_path / f"{i}.o",
                                                  ["-Werror", "-Wextra"]),
                             range(len(sources))))
    assert said == [""] * len(sources)


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


# ------------------------------------------------------------ pynova build (issue 10)
WARNS_C = """#include "pynova.h"
int main(void)
{
    int unused;
    print_str("warned\\n");
    return 0;
}
"""

INLINE_C = """#include "pynova.h"
static int helper(int x) { return x * 3 + 1; }
int main(void) { exit(helper(13)); }
"""


def _cli_build(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    from conftest import pynova_cli

    return pynova_cli("build", *args, cwd=cwd)


@needs_toolchain
def test_warnings_are_shown_and_only_errors_fail(tmp_path: Path) -> None:
    source = tmp_path / "warns.c"
    source.write_text(WARNS_C)
    seen: list[str] = []
    build_program([source], tmp_path / "warns", warn=seen.append)
    assert len(seen) == 1 and "unused variable" in seen[0] and "[-Wunused-variable]" in seen[0]
    result = _cli_build(str(source), "-o", str(tmp_path / "w2"))
    assert result.returncode == 0 and result.stdout == f"{tmp_path / 'w2'}\n"
    assert "warns.c:4:9: warning: unused variable" in result.stderr


@needs_toolchain
def test_c_flags_reach_c_files_only(tmp_path: Path) -> None:
    # A forced C include would break every assembly file it reached.
    (tmp_path / "decl.h").write_text("int declared_by_flag(void);\n")
    (tmp_path / "add.S").write_text(".text\n.global add_one\nadd_one:\n"
                                    "    mov 4(%esp), %eax\n    inc %eax\n    ret\n")
    (tmp_path / "main.c").write_text('#include "pynova.h"\nint add_one(int);\n'
                                     "int main(void) { exit(add_one(41)); }\n")
    out = build_program([tmp_path / "main.c", tmp_path / "add.S"], tmp_path / "prog",
                        extra_cflags=["-include", str(tmp_path / "decl.h")])
    from conftest import pynova_cli

    assert pynova_cli("run", str(out)).returncode == 42


@needs_toolchain
@needs_binutils
@pytest.mark.parametrize("flags, inlined, macros", [
    ([], True, False),
    (["--cflags", "-O0"], False, False),
    (["--cflags=-O0"], False, False),
    (["--cflags", "-O0 -g3"], False, True),
    (["--debug"], False, False),
])
def test_cli_cflags_spellings_and_debug(tmp_path: Path, flags: list[str], inlined: bool,
                                        macros: bool) -> None:
    source = tmp_path / "inline.c"
    source.write_text(INLINE_C)
    out = tmp_path / "inline"
    result = _cli_build(str(source), "-o", str(out), *flags)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert ("helper" not in _nm(out)) == inlined   # -O1 inlines it; -O0 keeps the call
    sections = subprocess.run(["readelf", "-SW", str(out)], capture_output=True, text=True,
                              check=True).stdout
    assert (".debug_macro" in sections) == macros  # -g3 reached the compiler as a flag
    from conftest import pynova_cli

    assert pynova_cli("run", str(out)).returncode == 40


@needs_toolchain
def test_including_the_c_library_says_to_use_pynova_h(tmp_path: Path) -> None:
    source = tmp_path / "std.c"
    source.write_text('#include <stdio.h>\nint main(void) { printf("hi\\n"); return 0; }\n')
    result = _cli_build(str(source), "-o", str(tmp_path / "std"))
    assert result.returncode == 127 and result.stdout == ""
    assert "std.c:1:10: fatal error: stdio.h: No such file or directory" in result.stderr
    assert "/usr/include" not in result.stderr  # not deep in the system's headers
    hint = result.stderr.splitlines()[-1]
    assert hint.startswith("hint: pynova programs run on pynova, not on Linux")
    assert '#include "pynova.h"' in hint and "printf" in hint and "malloc" in hint
    # The compiler's own freestanding headers do work.
    source.write_text("#include <stdint.h>\n#include <stdbool.h>\n#include \"pynova.h\"\n"
                      "int main(void) { uint64_t v = 1; bool b = true; exit((int)v + b); }\n")
    assert _cli_build(str(source), "-o", str(tmp_path / "std")).returncode == 0


def test_an_unsupported_source_type_is_named(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("int main(void) { return 0; }\n")
    result = _cli_build(str(notes), "-o", str(tmp_path / "notes"))
    assert (result.returncode, result.stdout) == (127, "")
    assert result.stderr == (f"pynova build: {notes}: unsupported source type '.txt': "
                             "use .c, .S or .s\n")


def test_output_paths_that_cannot_be_written_are_one_line(tmp_path: Path) -> None:
    source = tmp_path / "p.c"
    source.write_text('#include "pynova.h"\nint main(void) { return 0; }\n')
    (tmp_path / "dir").mkdir()
    cases = {str(tmp_path / "dir"): "is a directory",
             str(tmp_path / "missing" / "p"): "no such directory"}
    for output, reason in cases.items():
        result = _cli_build(str(source), "-o", output)
        assert (result.returncode, result.stdout) == (127, ""), result
        assert result.stderr.count("\n") == 1 and reason in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "missing").exists()  # no directory is made behind the user's back


# ------------------------------------------- the runtime cache, libc_replace
HELLO_MALLOC_C = """#include "pynova.h"
int main(void) { printf("malloc gave %p\\n", malloc(8)); exit(0); }
"""
NO_MALLOC_C = """#include "pynova.h"
void *malloc(size_t n) { (void)n; return 0; }
void free(void *p) { (void)p; }
void *calloc(size_t c, size_t s) { (void)c; (void)s; return 0; }
void *realloc(void *p, size_t n) { (void)p; (void)n; return 0; }
size_t malloc_heap_size(void) { return 0; }
"""


def _run_output(path: Path) -> str:
    from conftest import pynova_cli

    return pynova_cli("run", str(path), "--quiet").stdout


@needs_toolchain
def test_start_and_libc_objects_are_compiled_once_and_kept(build_dir: Path, tmp_path: Path
                                                            ) -> None:
    source = tmp_path / "prog.c"
    source.write_text(HELLO_MALLOC_C)
    build_program([source], tmp_path / "one")
    kept = sorted(p.name for p in build_dir.glob("runtime-*/*.o"))
    libc = sorted(p.name for p in (examples_dir().parent / "libc").glob("*.c"))
    assert kept == sorted(["start.S.o", *(f"{name}.o" for name in libc)])
    stamps = {p: p.stat().st_mtime_ns for p in build_dir.glob("runtime-*/*.o")}
    build_program([source], tmp_path / "two")
    assert {p: p.stat().st_mtime_ns for p in build_dir.glob("runtime-*/*.o")} == stamps
    assert _run_output(tmp_path / "two") == "malloc gave 0x00005008\n"


@needs_toolchain
def test_a_replaced_libc_file_is_compiled_from_the_replacement(build_dir: Path,
                                                               tmp_path: Path) -> None:
    source, mine = tmp_path / "prog.c", tmp_path / "malloc.c"
    source.write_text(HELLO_MALLOC_C)
    mine.write_text(NO_MALLOC_C)
    build_program([source], tmp_path / "libc")   # the cache now holds libc's malloc.c.o
    out = build_program([source], tmp_path / "mine", libc_replace={"malloc.c": mine})
    assert _run_output(out) == "malloc gave 0x00000000\n"
    assert _run_output(tmp_path / "libc") == "malloc gave 0x00005008\n"
    with pytest.raises(ToolchainError, match="no libc file 'nope.c' to replace"):
        build_program([source], tmp_path / "x", libc_replace={"nope.c": mine})
    with pytest.raises(ToolchainError, match="source file not found: "):
        build_program([source], tmp_path / "x", libc_replace={"malloc.c": tmp_path / "no.c"})


@needs_toolchain
def test_the_runtime_cache_follows_the_sources_and_skips_extra_flags(
        build_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "prog.c"
    source.write_text(HELLO_MALLOC_C)
    build_program([source], tmp_path / "flags", extra_cflags=["-DUNUSED=1"])
    assert not list(build_dir.glob("runtime-*"))    # flags may change what libc compiles to
    build_program([source], tmp_path / "a")
    monkeypatch.setattr(toolchain, "_sources_hash", lambda: "other sources")
    build_program([source], tmp_path / "b")
    assert len(list(build_dir.glob("runtime-*"))) == 2


@needs_toolchain
def test_a_cache_that_cannot_be_made_is_skipped(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("PYNOVA_BUILD_DIR", str(blocker))
    source = tmp_path / "prog.c"
    source.write_text(HELLO_MALLOC_C)
    assert _run_output(build_program([source], tmp_path / "p")) == "malloc gave 0x00005008\n"
