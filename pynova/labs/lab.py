"""What a lab is: the files it hands out, its staged checks, and the two
hooks through which the student's code stands in for pynova's.

A concrete lab module (``pynova/labs/<name>.py``) builds one ``Lab`` and
calls it ``LAB``; ``pynova.labs.registry`` lists the modules. A check is a
function of a ``CheckContext`` that returns when the student's code is
right and raises ``CheckFailed`` (usually through ``fail``) when it is not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pynova.labs.limits import Limits

if TYPE_CHECKING:
    from pynova.runner import RunResult

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # pynova/


class CheckFailed(Exception):
    """The student's code did not do what a check expects.

    ``message`` says what was expected, what happened and why; ``score``
    is partial credit (0 unless the check grants some)."""

    def __init__(self, message: str, score: float = 0) -> None:
        super().__init__(message)
        self.message = message
        self.score = score


def fail(expected: str, got: str, why: str = "", *, score: float = 0) -> CheckFailed:
    """A CheckFailed in the labs' format: ``raise fail(expected, got, why)``."""
    lines = [f"expected: {expected}", f"got:      {got}"]
    if why:
        lines.append(f"why:      {why}")
    return CheckFailed("\n".join(lines), score)


class StudentCodeError(Exception):
    """The student's code could not be loaded (a missing file, a syntax
    error, an exception at import); the message carries the student's own
    traceback."""


@dataclass(frozen=True)
class WorkspaceFile:
    """One file a lab hands out: the ``# lab NAME: begin/end`` region(s) of
    ``source`` (a path inside the pynova package, or an absolute path),
    written to the workspace as ``name``."""

    name: str
    source: str | Path
    region: str | None = None  # the marker's NAME; default: the lab's name

    def source_path(self) -> Path:
        path = Path(self.source)
        return path if path.is_absolute() else PACKAGE_DIR / path


@dataclass(frozen=True)
class Workspace:
    """A student's directory: the lab's files, README.md, .pynova-lab.json."""

    path: Path
    lab: str
    solution: bool = False

    def file(self, name: str) -> Path:
        return self.path / name


@dataclass(frozen=True)
class Student:
    """The student's code as loaded from a workspace: the imported modules
    by file name, the files themselves (tracebacks are trimmed to their
    frames), and whatever else a lab's ``load`` hook prepared."""

    workspace: Workspace
    modules: Mapping[str, ModuleType]
    files: tuple[Path, ...]
    data: Mapping[str, Any] = field(default_factory=dict)

    def module(self, name: str | None = None) -> ModuleType:
        """The module loaded from workspace file ``name`` (default: the only one)."""
        if name is None:
            if len(self.modules) != 1:
                raise KeyError(f"which module? the workspace has {sorted(self.modules)}")
            return next(iter(self.modules.values()))
        return self.modules[name]


@dataclass(frozen=True)
class CheckContext:
    """What a check sees: the lab, the workspace, the loaded student code,
    and the run limits (a check's own defaults, overridable per run)."""

    lab: Lab
    workspace: Workspace
    student: Student
    limits: Limits = Limits()

    def run(self, program: str | Path | bytes, *, name: str | None = None,
            **limits: Any) -> RunResult:
        """Run a user program with the student's code in place: ``program``
        is ELF bytes, a path, or the name of a bundled example."""
        image, default_name = program_image(program)
        return self.lab.run_program(self.student, image, name or default_name,
                                    self.limits.replace(**limits))


CheckFunction = Callable[[CheckContext], None]


@dataclass(frozen=True)
class Check:
    """One staged check. ``needs`` names earlier checks it builds on (a
    failure then says so); ``timeout`` overrides the per-check wall-clock
    limit (seconds)."""

    name: str
    max_score: float
    run: CheckFunction
    needs: tuple[str, ...] = ()
    timeout: float | None = None


def program_image(program: str | Path | bytes) -> tuple[bytes, str]:
    """The bytes and display name of a program given as bytes, a path or
    the name of a bundled example (built on demand)."""
    if isinstance(program, bytes):
        return program, "program"
    path = Path(program)
    if isinstance(program, str) and "/" not in program and not path.exists():
        from pynova import toolchain
        path = toolchain.example_path(program)
    return path.read_bytes(), path.stem


def load_python_files(lab: Lab, workspace: Workspace) -> Student:
    """The default ``load`` hook: import every ``.py`` file the lab hands out."""
    from pynova.labs.student import import_file

    modules: dict[str, ModuleType] = {}
    files = tuple(workspace.file(f.name).resolve() for f in lab.files)
    for wf, path in zip(lab.files, files, strict=True):
        if not path.is_file():
            raise StudentCodeError(f"the workspace has no {wf.name} "
                                   f"(`pynova lab start {lab.name} DIR` writes it)")
        if path.suffix == ".py":
            modules[wf.name] = import_file(path, lab.name, workspace.path)
    return Student(workspace, modules, files)


def no_kernel_options(student: Student) -> Mapping[str, Any]:
    return {}


def default_run_program(lab: Lab, student: Student, image: bytes, name: str,
                        limits: Limits) -> RunResult:
    """Boot a fresh machine with ``image`` and the options the lab's
    ``kernel_options`` hook derives from the student's code."""
    from pynova.program_output import ProgramConsole
    from pynova.runner import run_image

    return run_image(image, name, console=ProgramConsole(), explain=True,
                     **limits.run_kwargs(), **lab.kernel_options(student))


@dataclass(frozen=True)
class Lab:
    """A lab: data plus four hooks (each with a default).

    * ``loader(lab, workspace) -> Student``: load the student's code
      (default: import the ``.py`` files of ``files``); raise
      StudentCodeError when it cannot be loaded.
    * ``kernel_options(student) -> mapping``: extra keyword arguments for
      ``pynova.runner.run_image`` that put the student's code in place
      (e.g. ``{"parts": ...}``); ``pynova run --lab`` passes them too.
    * ``runner(lab, student, image, name, limits) -> RunResult``: how a
      check (and a hidden check) runs a user program; the default boots
      with ``kernel_options``.
    * ``program_builder(student, sources, output) -> Path``: for a lab
      whose student code is part of the user program (the malloc lab links
      the student's allocator): builds a hidden check's C/asm sources with
      it, in the check's process. None (the default): hidden programs are
      built once with pynova's own libc.
    * ``prepare() -> None``: builds what the lab's own checks need (their
      user programs) before the checks' processes start, so that no
      check's time limit pays for a compiler; it must not raise (a check
      whose program is missing says so itself). None: nothing to do.
    """

    name: str
    title: str
    summary: str
    files: tuple[WorkspaceFile, ...]
    readme: str
    checks: tuple[Check, ...]
    parts: tuple[str, ...] = ()
    loader: Callable[[Lab, Workspace], Student] = load_python_files
    kernel_options: Callable[[Student], Mapping[str, Any]] = no_kernel_options
    runner: Callable[[Lab, Student, bytes, str, Limits], RunResult] = default_run_program
    program_builder: Callable[[Student, Sequence[Path], Path], Path] | None = None
    prepare: Callable[[], None] | None = None
    limits: Limits = Limits()  # the default limits of a check's runs
    #: The program a workspace's README runs with ``pynova run PROGRAM --lab .``.
    try_program: str = "example:hello"
    #: The file this lab was loaded from, for labs outside the registry.
    origin: Path | None = None

    def load(self, workspace: Workspace) -> Student:
        return self.loader(self, workspace)

    def run_program(self, student: Student, image: bytes, name: str,
                    limits: Limits | None = None) -> RunResult:
        return self.runner(self, student, image, name, limits or self.limits)

