"""The Python API for autograders: ``pynova.run(program, **limits)``.

Every call boots a fresh Machine and closes it afterwards (Unicorn and the
RAM mapping are freed), so many runs in one process do not grow memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

from pynova.kernel.exceptions import Fault
from pynova.runner import run_image
from pynova.tools.maps import Range, ranges

Program = str | bytes | PathLike[str]


@dataclass(frozen=True)
class Result:
    """What one run produced."""

    output: str                 # everything the kernel and program wrote on the console
    status: int                 # the exit status `pynova run` would return (docs/ABI.md)
    reason: str                 # exit | done | fault | limit | elf | boot
    message: str = ""
    fault: Fault | None = None  # vector, eip, cr2, error_code, ec
    instructions: int | None = None
    maps: list[Range] = field(default_factory=list)  # the final page map (user half)

    @property
    def ok(self) -> bool:
        return self.reason in ("exit", "done") and self.status == 0


def _load(program: Program) -> tuple[bytes, str]:
    if isinstance(program, bytes):
        return program, "program"
    path = Path(program)
    if not path.exists() and isinstance(program, str) and "/" not in program:
        from pynova import toolchain
        path = toolchain.example_path(program)
    return path.read_bytes(), path.name


def run(program: Program, *, max_insns: int | None = None, timeout: float | None = None,
        mem: int = 128 << 20, quantum: int | None = 10000, explain: bool = True,
        count_instructions: bool = False) -> Result:
    """Run an i386 ELF program (a path, the bytes of the file, or the name
    of a bundled example) on a fresh machine and return what happened.

    ``instructions`` is always counted with pynova's patched libunicorn (at
    no cost); with the wheel's only for ``max_insns`` or when asked with
    ``count_instructions`` (a Python hook per block: many times slower)."""
    image, name = _load(program)
    final: list[list[Range]] = []

    def on_exit(kernel) -> None:  # type: ignore[no-untyped-def]
        final.append(ranges(kernel.pd.ptab) if kernel.pd is not None else [])

    r = run_image(image, name, mem_size=mem, max_insns=max_insns, timeout=timeout,
                  quantum=quantum, count_instructions=count_instructions, explain=explain,
                  on_exit=on_exit)
    return Result(r.output, r.status, r.reason, r.message, r.fault, r.instructions,
                  final[0] if final else [])
