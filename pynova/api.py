"""The Python API for autograders: ``pynova.run(program, **limits)``.

Every call boots a fresh Machine and closes it afterwards (Unicorn and the
RAM mapping are freed), so many runs in one process do not grow memory.

``program`` is a path, the bytes of an ELF file, or ``"example:NAME"`` for
a bundled example: a plain name is always a path, so a student's missing
``hello`` is never graded as pynova's own. A program that cannot be read
(missing, a directory, unreadable, an example that cannot be built) gives a
Result with the CLI's status 127, reason ``"not_found"`` and the reason in
``message``; nothing is raised for it.

``lab=DIR`` boots with the code of a lab workspace (``pynova lab start``)
in place of pynova's part; when that code raises, the Result has status
71, reason ``"lab"`` and the student's traceback in ``message``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

from pynova.kernel.exceptions import Fault
from pynova.kernel.kernel import KernelPanic
from pynova.kernel.limits import check_limits
from pynova.machine.console import DEFAULT_KEEP
from pynova.program_output import ProgramConsole
from pynova.runner import check_mem, read_module, run_image
from pynova.tools.maps import Range, ranges

Program = str | bytes | PathLike[str]


@dataclass(frozen=True)
class Result:
    """What one run produced."""

    output: str                 # what the kernel and program wrote on the console (see max_output)
    status: int                 # the exit status `pynova run` would return (docs/ABI.md)
    reason: str                 # exit | done | fault | limit | elf | boot | kernel | lab
    #                             | not_found
    message: str = ""
    fault: Fault | None = None  # vector, eip, cr2, error_code, ec
    instructions: int | None = None
    maps: list[Range] = field(default_factory=list)  # the final page map (user half)
    #: only what the program printed (the print call), in order, byte for
    #: byte: no banner, load lines, reports or explanations
    program_output: bytes = b""
    output_dropped: int = 0     # characters left out of ``output`` (0: it is complete)
    program_output_dropped: int = 0  # bytes left out of the end of ``program_output``

    @property
    def ok(self) -> bool:
        return self.reason in ("exit", "done") and self.status == 0


STATUS_NOT_FOUND = 127
STATUS_LAB = 71
EXAMPLE_PREFIX = "example:"


class ProgramNotFound(Exception):
    """The program could not be read or built (status 127)."""


def _load(program: Program, mem: int) -> tuple[bytes, str]:
    if isinstance(program, bytes):
        return program, "program"
    if isinstance(program, str) and program.startswith(EXAMPLE_PREFIX):
        return _example(program[len(EXAMPLE_PREFIX):], mem)
    path = Path(program)
    try:
        return read_module(path, mem), os.fsencode(path.name).decode("latin-1")
    except OSError as err:
        hint = ""
        if isinstance(program, str) and "/" not in program and not path.exists():
            hint = f" (a bundled example is {EXAMPLE_PREFIX}{program})"
        raise ProgramNotFound(f"{program}: {err.strerror or err}{hint}") from None


def _example(name: str, mem: int) -> tuple[bytes, str]:
    from pynova import toolchain
    try:
        return read_module(toolchain.example_path(name), mem), name
    except toolchain.UnknownExample as err:
        raise ProgramNotFound(f"{EXAMPLE_PREFIX}{name}: {err}") from None
    except (toolchain.ToolchainError, OSError) as err:
        raise ProgramNotFound(f"{EXAMPLE_PREFIX}{name}: cannot build it: {err}") from None


def check_options(max_output: object, quantum: object) -> None:
    if isinstance(max_output, bool) or not isinstance(max_output, int) or max_output < 0:
        raise ValueError(f"max_output must be a number of characters >= 0, not {max_output!r}")
    if quantum is not None and (isinstance(quantum, bool) or not isinstance(quantum, int)
                                or quantum <= 0):
        raise ValueError(f"quantum must be a positive number of instructions, not {quantum!r}")


def run(program: Program, *, max_insns: int | None = None, timeout: float | None = None,
        mem: int = 128 << 20, quantum: int | None = 10000, explain: bool = True,
        count_instructions: bool = False, max_output: int = DEFAULT_KEEP,
        lab: str | PathLike[str] | None = None) -> Result:
    """Run an i386 ELF program (a path, the bytes of the file, or
    ``"example:NAME"``) on a fresh machine and return what happened. A
    program that cannot be read gives status 127 (see the module's doc).

    ``instructions`` is always counted with pynova's patched libunicorn (at
    no cost); with the wheel's only for ``max_insns`` or when asked with
    ``count_instructions`` (a Python hook per block: many times slower).
    Bad limits raise ValueError (see docs/ABI.md, "Limits"); ``output``
    and ``program_output`` keep at most ``max_output`` characters (bytes)
    each (``output_dropped``, ``program_output_dropped`` count the rest).
    ``lab``: a lab workspace whose code stands in for pynova's part (see
    the module's doc); ValueError when it is not a workspace."""
    check_limits(max_insns, timeout)
    check_options(max_output, quantum)
    check_mem(mem)
    workspace = None
    if lab is not None:
        from pynova.labs.runlab import LabCodeFailed, LabError, open_lab
        try:
            workspace = open_lab(Path(lab))
        except LabError as err:
            raise ValueError(f"lab: {err}") from None
        except LabCodeFailed as err:
            return Result("", STATUS_LAB, "lab", str(err))
    try:
        image, name = _load(program, mem)
    except ProgramNotFound as err:
        return Result("", STATUS_NOT_FOUND, "not_found", str(err))
    except KernelPanic as err:
        return Result(f"{err}\n", err.status, "boot", str(err))
    console = ProgramConsole(keep=max_output)
    final: list[list[Range]] = []

    def on_exit(kernel) -> None:  # type: ignore[no-untyped-def]
        final.append(ranges(kernel.pd.ptab) if kernel.pd is not None else [])

    options = dict(workspace.kernel_options) if workspace is not None else {}
    try:
        r = run_image(image, name, mem_size=mem, console=console, max_insns=max_insns,
                      timeout=timeout, quantum=quantum, count_instructions=count_instructions,
                      explain=explain, on_exit=on_exit, **options)
    except Exception as exc:  # a lab's code may raise anything; KeyboardInterrupt passes
        failure = workspace.failure(exc) if workspace is not None else None
        if failure is None:
            raise
        return Result(console.output, STATUS_LAB, "lab", failure,
                      program_output=bytes(console.program))
    return Result(r.output, r.status, r.reason, r.message, r.fault, r.instructions,
                  final[0] if final else [], bytes(console.program), r.output_dropped,
                  console.program_dropped)
