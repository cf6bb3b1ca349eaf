"""A lab whose student code is C in the user programs (lab malloc): the
student's file compiled, linked into check programs in place of a libc
file, the programs cached and run, and what they print read back.

The check programs print lines ``check: KIND key=value ...`` (values are
numbers or words); a check reads them as ``Event``\\ s and explains in the
allocator's terms what went wrong. When a program did not get to its end
(``check: done``), ``ended_early`` says how it ended and where: the fault
and the function (and source line) it hit, or where a time limit found it.

Built programs are cached under ``$PYNOVA_BUILD_DIR/lab-c`` (else
``~/.cache/pynova/lab-c``) by ``toolchain.build_key``: a key of everything
the build reads, the student's file included.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pynova import toolchain
from pynova.labs.lab import CheckContext, CheckFailed, Lab, Student, StudentCodeError, Workspace

if TYPE_CHECKING:
    from pynova.runner import RunResult

#: Built programs kept in the cache (the oldest go first).
CACHE_ENTRIES = 256
#: Lines of compiler output shown for a file that does not compile.
COMPILER_LINES = 12
#: Compiler warnings shown with a failed check.
WARNINGS_SHOWN = 3
#: A fault this far above the break is a write past it, not a wild pointer.
NEAR_BREAK = 16 << 20
#: An absolute path in a tool's message: shown as its last part.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])/(?:[^\s:/'\"`]+/)+([^\s:/'\"`]+)")


class Event:
    """One ``check: KIND key=value ...`` line of a check program."""

    def __init__(self, kind: str, fields: Mapping[str, int | str], line: str) -> None:
        self.kind = kind
        self.fields = dict(fields)
        self.line = line

    def __getitem__(self, key: str) -> int:
        value = self.fields[key]
        if not isinstance(value, int):
            raise KeyError(f"{key} is not a number in {self.line!r}")
        return value

    def word(self, key: str) -> str:
        return str(self.fields[key])

    def __repr__(self) -> str:
        return f"Event({self.line!r})"


def parse_events(output: str) -> list[Event]:
    events = []
    for line in output.splitlines():
        if not line.startswith("check: "):
            continue
        kind, *pairs = line[len("check: "):].split()
        fields: dict[str, int | str] = {}
        for pair in pairs:
            key, _, value = pair.partition("=")
            try:
                fields[key] = int(value, 0)
            except ValueError:
                fields[key] = value
        events.append(Event(kind, fields, line[len("check: "):]))
    return events


@dataclass
class ProgramRun:
    """A check program's run: its result, its events, the ELF image, and
    where the CPU was when the run ended."""

    name: str
    result: RunResult
    events: list[Event]
    image: bytes
    eip: int | None = None      # where the CPU was when the run ended
    brk: int | None = None      # the break then
    source: Path | None = None
    hint: str = ""
    notes: list[str] = field(default_factory=list)

    def all(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    def first(self, kind: str) -> Event | None:
        return next((e for e in self.events if e.kind == kind), None)

    @property
    def done(self) -> bool:
        return self.first("done") is not None

    @property
    def last(self) -> Event | None:
        """The last thing the program reported (not that it stopped)."""
        told = [e for e in self.events if e.kind != "stop"]
        return told[-1] if told else None


# ------------------------------------------------------------- loading
def load_c_files(lab: Lab, workspace: Workspace) -> Student:
    """The ``loader`` of a C lab: every workspace file must compile on its
    own (a StudentCodeError shows the compiler's first lines, with the
    file's name and line). Its warnings are kept for failed checks."""
    files = tuple(workspace.file(f.name).resolve() for f in lab.files)
    warnings: dict[str, str] = {}
    for path in files:
        if not path.is_file():
            raise StudentCodeError(f"the workspace has no {path.name} "
                                   f"(`pynova lab start {lab.name} DIR` writes it)")
        warnings[path.name] = compile_alone(path)
    return Student(workspace, {}, files, {"warnings": warnings})


def find_toolchain() -> toolchain.Toolchain:
    try:
        return toolchain.find_toolchain()
    except toolchain.ToolchainError as err:
        raise StudentCodeError(f"pynova cannot build C programs here: {err}") from None


def compile_alone(path: Path) -> str:
    """Compile ``path`` as the libc's files are; return its warnings."""
    tc = find_toolchain()
    with tempfile.TemporaryDirectory(prefix="pynova-lab-") as tmp:
        try:
            return tidy(tc.compile(path, Path(tmp) / "student.o"))
        except toolchain.ToolchainError as err:
            lines = tidy(str(err)).splitlines()[1:]  # the first says "compiling ... failed"
            shown = lines[:COMPILER_LINES]
            if len(lines) > COMPILER_LINES:
                shown.append(f"... ({len(lines) - COMPILER_LINES} more lines)")
            # The first error on the headline: a grading summary shows that line.
            first = next((line.strip() for line in lines if ": error:" in line), "")
            head = f"{path.name} does not compile" + (f": {first}" if first else ":")
            raise StudentCodeError(head + "\n" + "\n".join(f"  {line}" for line in shown)) \
                from None


def tidy(text: str) -> str:
    """A tool's message with each absolute path cut to its file name."""
    return _ABSOLUTE_PATH.sub(r"\1", text)


def warnings_note(student: Student) -> str:
    """The compiler's warnings about the student's files, a few headlines
    (not the "defined but not used" of a skeleton's unused helpers)."""
    found: list[str] = []
    for text in student.data.get("warnings", {}).values():
        found += [line.strip() for line in text.splitlines()
                  if "warning:" in line and "-Wunused-function" not in line]
    if not found:
        return ""
    more = f" (and {len(found) - WARNINGS_SHOWN} more)" if len(found) > WARNINGS_SHOWN else ""
    return "the compiler warned" + more + ":\n" + "\n".join(
        f"  {line}" for line in found[:WARNINGS_SHOWN])


# ------------------------------------------------------------ building
def cache_dir() -> Path:
    env = os.environ.get(toolchain.BUILD_DIR_ENV)
    base = Path(env) if env else Path.home() / ".cache" / "pynova"
    return base / "lab-c"


def build_image(student: Student, sources: Sequence[Path], replace: str) -> bytes:
    """The ELF image of ``sources`` linked with the student's file in place
    of the libc file ``replace``, from the cache or built into it."""
    tc = find_toolchain()
    swap = {replace: student.files[0]}
    key = toolchain.build_key(sources, toolchain=tc, libc_replace=swap)
    target = cache_dir() / f"{sources[0].stem}-{key}.elf"
    try:
        return target.read_bytes()
    except OSError:
        pass
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        toolchain.build_program(list(sources), target, toolchain=tc, libc_replace=swap,
                                warn=lambda text: None)
        image = target.read_bytes()
    except toolchain.ToolchainError as err:
        raise StudentCodeError(_build_failure(str(err), sources, student)) from None
    except OSError as err:
        raise StudentCodeError(f"cannot build {sources[0].name}: {err.strerror or err}") \
            from None
    prune(target.parent)
    return image


def _build_failure(error: str, sources: Sequence[Path], student: Student) -> str:
    mine = student.files[0].name
    lines = tidy(error).splitlines()
    shown = "\n".join(f"  {line}" for line in lines[1:COMPILER_LINES + 1])
    what = "link" if lines and lines[0].startswith("linking") else "build"
    text = f"{mine} does not {what} with the check's program {sources[0].name}:\n{shown}"
    if "undefined reference" in error:
        text += (f"\nwhy:      {mine} must define every function of the file it replaces "
                 f"(pynova.h declares them)")
    elif "multiple definition" in error:
        text += f"\nwhy:      {mine} defines a function another file of the program defines too"
    return text


def prune(folder: Path, keep: int = CACHE_ENTRIES) -> None:
    """Delete the oldest entries beyond ``keep`` (another process may be
    doing the same: a file already gone is fine)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.stat().st_mtime, reverse=True)
    except OSError:
        return
    for entry in entries[keep:]:
        try:
            os.unlink(entry.path)
        except OSError:
            pass


def builder_for(replace: str):  # type: ignore[no-untyped-def]
    """A ``Lab.program_builder``: a hidden check's sources with the
    student's file in place of the libc file ``replace``."""
    def build(student: Student, sources: Sequence[Path], output: Path) -> Path:
        output.write_bytes(build_image(student, [Path(s) for s in sources], replace))
        return output
    return build


# ------------------------------------------------------------- running
def run_program(ctx: CheckContext, source: Path, replace: str, *, hint: str = "",
                **limits: object) -> ProgramRun:
    """Build ``source`` with the student's file and run it with the lab's
    limits (``limits`` override them)."""
    from pynova.machine import Console
    from pynova.runner import run_image

    image = build_image(ctx.student, [source], replace)
    stop: dict[str, int] = {}

    def on_exit(kernel: object) -> None:
        current = getattr(kernel, "current", None)
        if current is not None:
            stop["eip"] = current.regs.eip
            stop["brk"] = current.pd.brk

    lim = ctx.limits.replace(**limits)
    result = run_image(image, source.stem, console=Console(), explain=True, on_exit=on_exit,
                       **lim.run_kwargs(), **ctx.lab.kernel_options(ctx.student))
    note = warnings_note(ctx.student)
    return ProgramRun(source.stem, result, parse_events(result.output), image,
                      stop.get("eip"), stop.get("brk"), source, hint, [note] if note else [])


def where(run: ProgramRun, eip: int) -> str:
    """``grow+0x1c (malloc.c:151)``: the function and, when binutils'
    addr2line can say, the source line."""
    from pynova.tools.symbols import SymbolTable

    name = SymbolTable.from_elf(run.image).describe(eip) or f"{eip:#x}"
    line = _source_line(run.image, eip)
    return f"{name} ({line})" if line else name


def _source_line(image: bytes, eip: int) -> str:
    tool = shutil.which("addr2line")
    if tool is None:
        return ""
    with tempfile.NamedTemporaryFile(prefix="pynova-lab-", suffix=".elf") as f:
        f.write(image)
        f.flush()
        try:
            out = subprocess.run([tool, "-e", f.name, f"{eip:#x}"], capture_output=True,
                                 text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    path, _, line = out.rpartition(":")
    line = line.split()[0] if line else ""
    if not path or path.startswith("?") or not line.isdigit() or line == "0":
        return ""
    return f"{Path(path).name}:{line}"


def ended_early(run: ProgramRun, doing: str, why: str = "") -> CheckFailed:
    """The failure of a program that did not reach ``check: done``:
    ``doing`` says what it was doing after its last line."""
    r = run.result
    last = f" (its last line: {run.last.line!r})" if run.last is not None else ""
    if r.fault is not None:
        f = r.fault
        got = f"{f.name} (vector {f.vector}) at eip {f.eip:#x} in {where(run, f.eip)}"
        if f.vector == 14:
            got += f", touching {f.cr2:#x}"
        got += last
        why = why or _fault_why(run)
    elif r.reason == "limit":
        at = f" in {where(run, run.eip)}" if run.eip is not None else ""
        got = f"stopped by the run's limit ({r.message}){at}{last}"
        why = why or ("an endless loop: e.g. a free list whose links lead back to a block "
                      "already seen, or a block of size 0 whose next block is itself")
    else:
        got = f"the program ended by {r.reason} with status {r.status}" + \
              (f" ({r.message})" if r.message else "") + last
    return failure(run, f"the check's program to run to its end, through {doing}", got, why)


def _fault_why(run: ProgramRun) -> str:
    f = run.result.fault
    assert f is not None
    if f.vector != 14:
        return "the allocator's code took an exception"
    if run.brk is not None and run.brk <= f.cr2 < run.brk + NEAR_BREAK:
        return (f"{f.cr2:#x} lies above the break, {run.brk:#x} then: memory there is not "
                f"mapped; an allocator hands out and writes only memory below the break")
    if run.brk is not None:
        return (f"{f.cr2:#x} is nowhere near the heap (the break was {run.brk:#x}): a "
                f"pointer read from the heap (a size, a footer, a free-list link) held other "
                f"bytes; the allocator's own data was overwritten, or never written")
    if f.cr2 < 0x1000:
        return "a NULL pointer (or a small offset from one) was used"
    return "the address is not mapped for the program"


def failure(run: ProgramRun, expected: str, got: str, why: str = "") -> CheckFailed:
    """A CheckFailed in the labs' format, with how to run the program."""
    lines = [f"expected: {expected}", f"got:      {got}"]
    if why:
        lines.append(f"why:      {why}")
    lines += run.notes
    if run.hint:
        lines.append(f"run it:   {run.hint}")
    return CheckFailed("\n".join(lines))
