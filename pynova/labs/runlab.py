"""``pynova run PROGRAM --lab DIR`` (and ``maps --lab``, ``pynova.run(...,
lab=DIR)``): boot with the student's part(s) of a workspace in place of
pynova's own.

The workspace's lab loads the student's file(s) (never from sys.path) and
says, through its ``kernel_options`` hook, how the kernel takes them (a
``Parts`` with the student's function, frames that come with junk). When
the student's code raises, while it loads or while the kernel runs it, the
run ends with ``STATUS_LAB`` and the student's own traceback: the one place
pynova shows one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pynova.kernel.parts import PartError
from pynova.labs.lab import Lab, Student, StudentCodeError, Workspace
from pynova.labs.student import one_line, student_traceback
from pynova.labs.workspace import WorkspaceError, open_workspace

#: The exit status of a run whose lab code raised (docs/ABI.md; EX_OSERR's
#: number, next to 70 for pynova's own internal errors).
STATUS_LAB = 71


class LabError(Exception):
    """DIR is not a workspace (a one-line reason: bad usage)."""


class LabCodeFailed(Exception):
    """The student's code raised; the message is what to show."""


@dataclass(frozen=True)
class LabRun:
    """A workspace opened for runs: the keyword arguments that put its code
    in the kernel (``runner.run_image``, ``runner.boot``)."""

    lab: Lab
    workspace: Workspace
    student: Student
    kernel_options: Mapping[str, Any]

    def failure(self, exc: BaseException) -> str | None:
        """What to show for an exception from a run with this code in
        place: the student's traceback; None when no frame of theirs is
        involved and pynova's emulator failed (an internal error)."""
        if isinstance(exc, PartError):
            return f"the kernel refused what your {exc.part} handed it:\n{exc.message}"
        trace = student_traceback(exc, self.student.files, self.workspace.path)
        if trace is not None:
            return f"your code raised {type(exc).__name__}:\n{trace}"
        if isinstance(exc, RuntimeError):
            return None
        return (f"pynova raised {one_line(exc)}, not in your code; it may have been given "
                f"something your code returned")


def open_lab(directory: str | Path) -> LabRun:
    """Open the workspace DIR and load its code: LabError when DIR is not
    a workspace, LabCodeFailed (with the traceback) when the code does not
    load."""
    try:
        lab, ws = open_workspace(Path(directory))
    except WorkspaceError as err:
        raise LabError(str(err)) from None
    if lab.program_builder is not None:
        # Its code goes into the user program, not into the kernel: a run
        # with --lab would quietly use pynova's own.
        raise LabError(f"lab {lab.name} is C code built into your program, not a kernel "
                       f"part: build the program with it (pynova build prog.c "
                       f"{Path(directory) / lab.files[0].name}), then run that")
    try:
        student = lab.load(ws)
        options = lab.kernel_options(student)
    except StudentCodeError as err:
        raise LabCodeFailed(f"your code does not load: {err}") from None
    return LabRun(lab, ws, student, options)
