"""The Python API for autograders: ``pynova.run(program, **limits)``.

Every call boots a fresh Machine and closes it afterwards (Unicorn and the
RAM mapping are freed), so many runs in one process do not grow memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

from pynova.kernel.exceptions import Fault
from pynova.kernel.kernel import KernelPanic
from pynova.kernel.limits import check_limits
from pynova.machine.console import DEFAULT_KEEP, Console
from pynova.runner import check_mem, read_module, run_image
from pynova.tools.maps import Range, ranges

Program = str | bytes | PathLike[str]


@dataclass(frozen=True)
class Result:
    """What one run produced."""

    output: str                 # what the kernel and program wrote on the console (see max_output)
    status: int                 # the exit status `pynova run` would return (docs/ABI.md)
    reason: str                 # exit | done | fault | limit | elf | boot
    message: str = ""
    fault: Fault | None = None  # vector, eip, cr2, error_code, ec
    instructions: int | None = None
    maps: list[Range] = field(default_factory=list)  # the final page map (user half)
    output_dropped: int = 0     # characters left out of ``output`` (0: it is complete)

    @property
    def ok(self) -> bool:
        return self.reason in ("exit", "done") and self.status == 0


def _load(program: Program, mem: int) -> tuple[bytes, str]:
    if isinstance(program, bytes):
        return program, "program"
    path = Path(program)
    if not path.exists() and isinstance(program, str) and "/" not in program:
        from pynova import toolchain
        path = toolchain.example_path(program)
    return read_module(path, mem), path.name


def check_options(max_output: object, quantum: object) -> None:
    if isinstance(max_output, bool) or not isinstance(max_output, int) or max_output < 0:
        raise ValueError(f"max_output must be a number of characters >= 0, not {max_output!r}")
    if quantum is not None and (isinstance(quantum, bool) or not isinstance(quantum, int)
                                or quantum <= 0):
        raise ValueError(f"quantum must be a positive number of instructions, not {quantum!r}")


def run(program: Program, *, max_insns: int | None = None, timeout: float | None = None,
        mem: int = 128 << 20, quantum: int | None = 10000, explain: bool = True,
        max_output: int = DEFAULT_KEEP) -> Result:
    """Run an i386 ELF program (a path, the bytes of the file, or the name
    of a bundled example) on a fresh machine and return what happened.

    Bad limits raise ValueError (see docs/ABI.md, "Limits"); ``output``
    keeps at most ``max_output`` characters (``output_dropped`` counts the
    rest)."""
    check_limits(max_insns, timeout)
    check_options(max_output, quantum)
    check_mem(mem)
    try:
        image, name = _load(program, mem)
    except KernelPanic as err:
        return Result(f"{err}\n", err.status, "boot", str(err))
    final: list[list[Range]] = []

    def on_exit(kernel) -> None:  # type: ignore[no-untyped-def]
        final.append(ranges(kernel.pd.ptab) if kernel.pd is not None else [])

    r = run_image(image, name, mem_size=mem, console=Console(keep=max_output),
                  max_insns=max_insns, timeout=timeout, quantum=quantum,
                  count_instructions=True, explain=explain, on_exit=on_exit)
    return Result(r.output, r.status, r.reason, r.message, r.fault, r.instructions,
                  final[0] if final else [], r.output_dropped)
