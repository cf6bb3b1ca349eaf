"""Threads (calls 4, 5, 8, 9) and preemptive round-robin scheduling (issue 3)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pynova.kernel.kernel import Kernel
from pynova.machine import Console, Machine
from pynova.runner import RunResult, boot, run_image
from pynova.toolchain import (
    build_program,
    example_path,
    examples_dir,
)

from conftest import needs_toolchain

pytestmark = needs_toolchain

#: main creates A, then B: each new thread goes right after its creator in
#: the circle (the course's rule), so the newest runs first: main, B, A.
YIELD_ORDER = [
    "main step 0 (EC 0)", "B step 0 (EC 2)", "A step 0 (EC 1)",
    "main step 1 (EC 0)", "B step 1 (EC 2)", "A step 1 (EC 1)",
    "main step 2 (EC 0)", "B step 2 (EC 2)", "A step 2 (EC 1)",
    "main done", "B done", "A done",
]
TICKS = [f"tick {i}" for i in range(5)]


def run(name: str, **kwargs: object) -> RunResult:
    return run_image(example_path(name).read_bytes(), name, mem_size=4 << 20,
                     timeout=60, **kwargs)  # type: ignore[arg-type]


def program_lines(result: RunResult) -> list[str]:
    """The program's output: what follows the loader's segment and stack lines."""
    lines = result.output.splitlines()
    last = max(i for i, line in enumerate(lines)
               if line.lstrip().startswith(("segment ", "stack ")))
    return lines[last + 1:]


@pytest.fixture(scope="module")
def main_spins(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out: Path = tmp_path_factory.mktemp("spin") / "spinner_main"
    build_program([examples_dir() / "spinner.c"], out, extra_cflags=["-DMAIN_SPINS"])
    return out.read_bytes()


@pytest.mark.parametrize("quantum", [None, 1_000_000])
def test_yield_interleaving_is_round_robin(quantum: int | None) -> None:
    result = run("threads", quantum=quantum)
    assert program_lines(result) == YIELD_ORDER
    assert (result.status, result.reason) == (0, "done")   # the last thread's thr_exit


def test_preempted_interleaving_is_deterministic() -> None:
    first, second = run("threads", quantum=100), run("threads", quantum=100)
    assert first.output == second.output
    lines = program_lines(first)
    assert sorted(lines) == sorted(YIELD_ORDER)
    assert lines != YIELD_ORDER                              # the quantum did cut in


def test_spinning_thread_does_not_starve_main() -> None:
    result = run("spinner", quantum=1000)
    assert program_lines(result) == [*TICKS, "spinner ran"]
    assert (result.status, result.reason) == (0, "exit")    # exit ends the spinner too


def test_without_quantum_the_spinner_starves_main() -> None:
    result = run_image(example_path("spinner").read_bytes(), "spinner", max_insns=300_000)
    assert result.status == 124
    assert program_lines(result)[:1] == ["tick 0"]
    assert "tick 1" not in result.output


def test_spinning_creator_does_not_starve_new_thread(main_spins: bytes) -> None:
    result = run_image(main_spins, "spinner_main", quantum=1000, timeout=60)
    assert program_lines(result) == [*TICKS, "spinner ran"]
    assert result.status == 0


def test_fault_names_the_thread() -> None:
    result = run("thread_fault", quantum=1000)
    assert "thread faulting" in result.output
    assert "not reached" not in result.output
    report = next(x for x in result.output.splitlines() if x.startswith("Ec::handle_exc"))
    assert report.startswith("Ec::handle_exc Page Fault (eip=")
    assert report.endswith("cr2=0x234) in EC 1")
    assert result.fault is not None and result.fault.ec == 1
    assert (result.status, result.reason) == (139, "fault")


# ------------------------------------------------------------ white box
@pytest.fixture()
def kernel() -> Iterator[Kernel]:
    with Machine(4 << 20, Console()) as machine:
        yield boot(machine, [(example_path("spinner").read_bytes(), "spinner")],
                   quantum=1000)


@pytest.mark.parametrize("eip, stack", [(0xC0000000, 0x5000), (0x2000, 0xC0000004)])
def test_thr_create_rejects_kernel_addresses(kernel: Kernel, eip: int, stack: int) -> None:
    assert kernel.parts.thr_create(kernel.threads, eip, stack) == 0xFFFFFFFF
    assert len(kernel.ecs) == 1


def test_quantum_switches_are_counted(kernel: Kernel) -> None:
    outcome = kernel.run(timeout=60)
    assert outcome.status == 0
    assert len(kernel.ecs) == 2
    assert kernel.stats.switches >= 10      # five yields, and as many preemptions back


def test_a_spinner_runs_exactly_one_quantum_per_slice(kernel: Kernel) -> None:
    kernel.cpu.set_counting(True)
    slices: list[tuple[int, int]] = []
    while len(slices) < 8 and kernel.outcome is None:
        ec, before = kernel.ready[0], kernel.cpu.instructions
        kernel.run_slice()
        slices.append((ec.id, kernel.cpu.instructions - before))
    spinner = [n for ec_id, n in slices if ec_id == 1]
    assert len(spinner) >= 3 and set(spinner) == {1000}
