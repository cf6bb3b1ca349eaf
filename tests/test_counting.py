"""Instruction counts: the patched library's native counter against the
wheel's (a block hook whose counts Capstone decodes), exactly.

Every bundled example ends in a different way (exit, a fault in the middle
of a block, a trap after an instruction, #UD, #GP from the CPU or from a
port hook, preemption); the count, the place where the task stopped and
the output must not depend on the library. A budget stops the CPU after
exactly that many instructions, also in the middle of a block.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pynova.machine import Console
from pynova.machine.uc_abi import LIBRARY_ENV, PATCHED_LIBRARY
from pynova.runner import run_image
from pynova.toolchain import build_program, example_path

from conftest import needs_toolchain

needs_patched = pytest.mark.skipif(not Path(PATCHED_LIBRARY).exists(),
                                   reason="the patched libunicorn is not built")

ENDINGS = ["hello", "exit42", "pagefault", "divzero", "int3", "outb", "cli", "hlt",
           "jump_unmapped", "kernelread", "textwrite", "unmapped_read", "sysmisc",
           "badprint", "bss", "threads", "spinner", "thread_fault", "malloc_threads"]


def counted_run(name: str, library: str, monkeypatch: pytest.MonkeyPatch,
                image: bytes | None = None,
                **limits: int) -> tuple[int, int | None, str, tuple[int, ...]]:
    """(status, instructions, output, final user registers) on one library."""
    monkeypatch.setenv(LIBRARY_ENV, PATCHED_LIBRARY if library == "patched" else "wheel")
    regs: list[tuple[int, ...]] = []
    if image is None:
        image = example_path(name).read_bytes()
    r = run_image(image, name, console=Console(),
                  count_instructions=True, quantum=limits.pop("quantum", 997),
                  on_exit=lambda k: regs.append(k.current.regs.as_tuple()), **limits)
    after_banner = r.output.split("\n", 1)[1]  # the banner names the library
    return r.status, r.instructions, after_banner, regs[0]


@needs_patched
@pytest.mark.parametrize("name", ENDINGS)
def test_native_count_equals_the_decoded_count(name: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    native = counted_run(name, "patched", monkeypatch)
    decoded = counted_run(name, "wheel", monkeypatch)
    assert native[1] is not None and native[1] > 0
    assert native == decoded


#: Blocks that call a helper (cpuid, div, int3) and blocks that call none
#: (plain instructions, ended by a direct jump: a ret or an indirect jump
#: calls the block lookup helper), chained into each other, the last one
#: ending in a fault in its middle: the patched library records the running
#: block only in blocks that call a helper and must still take back exactly
#: the instructions that did not complete.
CHAINED_FAULTS = {
    "a plain block after a helper's": "cpuid; jmp 1f; 1: mov $1, %%eax; add %%eax, %%ebx; "
                                      "mov 0x10, %%ecx; jmp 2f; 2:",
    "a helper's block after a plain one": "mov $7, %%ebx; xor %%ecx, %%ecx; jmp 1f; "
                                          "1: add $1, %%ebx; xor %%edx, %%edx; mov $5, %%eax; "
                                          "div %%ecx; jmp 2f; 2:",
    "a plain loop, then a plain block": "mov $1000, %%ecx; 1: add $3, %%ebx; dec %%ecx; "
                                        "jnz 1b; mov 0x10, %%eax; jmp 2f; 2:",
    "a helper's loop, then a trap": "mov $50, %%esi; 1: xor %%eax, %%eax; cpuid; dec %%esi; "
                                    "jnz 1b; int3; jmp 2f; 2:",
}


@needs_patched
@needs_toolchain
@pytest.mark.parametrize("case", sorted(CHAINED_FAULTS))
def test_faults_in_chained_blocks_are_counted_exactly(
        case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "chained.c"
    source.write_text('#include "pynova.h"\nint main(void)\n{\n'
                      f'    __asm__ volatile("{CHAINED_FAULTS[case]}" ::: "eax", "ebx", "ecx", '
                      '"edx", "esi", "memory");\n    return 0;\n}\n')
    image = build_program([source], tmp_path / "chained").read_bytes()
    native = counted_run("chained", "patched", monkeypatch, image=image)
    decoded = counted_run("chained", "wheel", monkeypatch, image=image)
    assert native[0] in (133, 136, 139)  # int3, #DE, #PF
    assert native == decoded


@needs_patched
@pytest.mark.parametrize("budget", [1, 2, 3, 4, 5, 6, 7, 11, 100, 1001, 12345])
def test_a_budget_stops_after_exactly_that_many_instructions(
        budget: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Budgets that end in the middle of blocks and at their ends: same
    count, same registers (eip among them) on both libraries."""
    native = counted_run("spin", "patched", monkeypatch, max_insns=budget)
    decoded = counted_run("spin", "wheel", monkeypatch, max_insns=budget)
    assert native[0] == 124 and native[1] == budget
    assert native == decoded


@needs_patched
def test_preemption_at_small_quanta_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    for quantum in (1, 3, 50):
        native = counted_run("spinner", "patched", monkeypatch, quantum=quantum)
        decoded = counted_run("spinner", "wheel", monkeypatch, quantum=quantum)
        assert native == decoded, quantum


@needs_patched
def test_trace_stamps_are_the_same_on_both_libraries() -> None:
    def trace(library: str) -> str:
        env = {**__import__("os").environ, LIBRARY_ENV: library}
        proc = subprocess.run([sys.executable, "-m", "pynova", "run", "--trace=all",
                               "--quantum", "500", "example:malloc_threads"],
                              capture_output=True, text=True, timeout=120, env=env)
        return proc.stderr

    native = trace(PATCHED_LIBRARY)
    assert "sched: run ec 1" in native and "+++" in native
    assert native == trace("wheel")


def test_the_api_counts_when_asked_or_for_a_limit(unicorn_library: str) -> None:
    """With the wheel's library counting is a Python hook per block, so
    pynova.run() counts only when asked or when max_insns needs it; the
    patched library always counts, at no cost."""
    import pynova

    plain = pynova.run("example:pagefault")
    asked = pynova.run("example:pagefault", count_instructions=True)
    limited = pynova.run("example:spin", max_insns=1000)
    assert (asked.instructions, limited.instructions) == (2, 1000)
    assert plain.instructions == (2 if unicorn_library == "patched" else None)
