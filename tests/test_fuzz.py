"""Issue 9: a small, seeded slice of the ELF mutation fuzz
(benchmarks/fuzz_elf.py runs thousands): whatever the bytes, pynova.run()
returns a status within its time limit and raises nothing."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import fuzz_elf  # noqa: E402


def test_mutants_end_in_time_with_a_documented_status() -> None:
    images = fuzz_elf.example_images(("hello", "exit42", "pagefault", "bss", "threads"))
    timeout = 0.5
    outcomes = [fuzz_elf.run_one(*fuzz_elf.mutant_with_index(images, 2024, i), timeout)
                for i in range(150)]
    escaped = [(o.what, o.error) for o in outcomes if o.status is None]
    assert not escaped
    late = [(o.what, round(o.seconds, 2)) for o in outcomes if o.seconds > timeout + 1.0]
    assert not late
    statuses = {o.status for o in outcomes}
    assert {0, 126, 139} <= statuses, statuses  # accepted, rejected and faulting mutants
