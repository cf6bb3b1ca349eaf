"""Hidden checks as data: a teacher's TOML files of user programs and what
must happen when they run with the student's code in place.

::

    [[check]]
    name = "hidden: bss reads as zero"
    lab = "elf"
    program = "bss_zero.c"      # C/asm sources (a string or a list) or an ELF file,
    score = 2                   # relative to this file
    mem = "16M"                 # optional run limits: mem, max_insns, timeout, quantum
    max_insns = 1_000_000
    why = "..."                 # optional: shown with a failure
    [check.expect]              # at least one of:
    status = 0                  # exit status (docs/ABI.md)
    reason = "exit"             # exit | done | fault | limit | elf | boot | kernel
    output = ["bss ok"]         # lines that appear in this order in the run's output
    output_exact = "bss ok\\n"   # the program's own output, all of it
    fault = { vector = 14, eip = 0x200c, cr2 = 0x3000, error_code = 7 }

A file's checks for other labs are skipped, so one directory can hold a
whole course's. Each check becomes an ordinary ``Check`` after the lab's
own; its programs are built once (``prepare``), into a cache keyed by
their sources, the libc and the toolchain.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pynova.argtypes import parse_size
from pynova.labs.lab import Check, CheckContext, Lab, fail

if TYPE_CHECKING:
    from pynova.runner import RunResult

SOURCE_SUFFIXES = (".c", ".S", ".s")
REASONS = ("exit", "done", "fault", "limit", "elf", "boot", "kernel")
FAULT_KEYS = ("vector", "eip", "cr2", "error_code")
CHECK_KEYS = ("name", "lab", "program", "score", "mem", "max_insns", "timeout", "quantum",
              "why", "expect")
EXPECT_KEYS = ("status", "reason", "output", "output_exact", "fault")
#: The check's process gets this much longer than a run's ``timeout``.
TIMEOUT_MARGIN = 2.0


class HiddenCheckError(Exception):
    """A malformed checks file: one line naming the file and the key."""


def program_output(result: RunResult) -> str:
    """What ``output_exact`` compares: the program's own output (what it
    printed with call 1), or the whole output when the run did not keep it
    apart."""
    if result.program_output is None:
        return result.output
    return result.program_output.decode("utf-8", "replace")


@dataclass(frozen=True)
class Expect:
    status: int | None = None
    reason: str | None = None
    output: tuple[str, ...] | None = None
    output_exact: str | None = None
    fault: Mapping[str, int] | None = None


@dataclass(frozen=True)
class HiddenCheck:
    """One ``[[check]]`` table, validated."""

    file: Path
    name: str
    lab: str
    program: tuple[Path, ...]
    score: float
    expect: Expect
    limits: Mapping[str, Any] = field(default_factory=dict)
    why: str = ""

    @property
    def is_source(self) -> bool:
        return self.program[0].suffix in SOURCE_SUFFIXES


# ------------------------------------------------------------- reading
def load_dir(directory: Path, lab: str) -> list[HiddenCheck]:
    """The checks for ``lab`` in every ``*.toml`` file of ``directory``
    (sorted by file name), each file checked whole."""
    if not directory.is_dir():
        raise HiddenCheckError(f"{directory}: not a directory of checks")
    found: list[HiddenCheck] = []
    for path in sorted(directory.glob("*.toml")):
        found += [c for c in load_file(path) if c.lab == lab]
    names = [c.name for c in found]
    for c in found:
        if names.count(c.name) > 1:
            raise HiddenCheckError(f"{c.file}: check name {c.name!r} is used twice")
    return found


def load_file(path: Path) -> list[HiddenCheck]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as err:
        raise HiddenCheckError(f"{path}: cannot read: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise HiddenCheckError(f"{path}: not valid TOML: {err}") from None
    unknown = [k for k in data if k != "check"]
    if unknown:
        raise HiddenCheckError(f"{path}: unknown key {unknown[0]!r} (a file holds "
                               f"[[check]] tables)")
    tables = data.get("check")
    if not isinstance(tables, list) or not tables:
        raise HiddenCheckError(f"{path}: no [[check]] tables")
    return [_check(path, i + 1, t) for i, t in enumerate(tables)]


class _Table:
    """Typed access to one TOML table, with errors naming file and key."""

    def __init__(self, path: Path, where: str, data: Mapping[str, Any],
                 allowed: Sequence[str]) -> None:
        self.path, self.where, self.data = path, where, data
        for key in data:
            if key not in allowed:
                raise self.error(key, f"unknown key (known: {', '.join(allowed)})")

    def error(self, key: str, what: str) -> HiddenCheckError:
        return HiddenCheckError(f"{self.path}: {self.where}: key {key!r}: {what}")

    def get(self, key: str, types: type | tuple[type, ...], what: str,
            required: bool = False) -> Any:
        if key not in self.data:
            if required:
                raise HiddenCheckError(f"{self.path}: {self.where}: missing key {key!r} "
                                       f"({what})")
            return None
        value = self.data[key]
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple)
                                                    else (types,)):
            raise self.error(key, f"expected {what}, got {value!r}")
        if not isinstance(value, types):
            raise self.error(key, f"expected {what}, got {value!r}")
        return value

    def positive(self, key: str, types: type | tuple[type, ...], what: str) -> Any:
        value = self.get(key, types, what)
        if value is not None and value <= 0:
            raise self.error(key, f"expected {what}, got {value!r}")
        return value


def _check(path: Path, number: int, raw: Any) -> HiddenCheck:
    if not isinstance(raw, dict):
        raise HiddenCheckError(f"{path}: check {number}: not a table")
    label = f"check {number}" + (f" ({raw['name']!r})" if isinstance(raw.get("name"), str)
                                 else "")
    t = _Table(path, label, raw, CHECK_KEYS)
    name = t.get("name", str, "a string", required=True)
    if not name.strip():
        raise t.error("name", "expected a non-empty string")
    lab = t.get("lab", str, "a lab's name", required=True)
    score = t.get("score", (int, float), "a number >= 0", required=True)
    if score < 0:
        raise t.error("score", f"expected a number >= 0, got {score!r}")
    program = _program(t, path)
    limits: dict[str, Any] = {}
    if (mem := t.get("mem", (str, int), "a memory size like \"16M\"")) is not None:
        try:
            limits["mem"] = parse_size(str(mem))
        except ValueError:
            raise t.error("mem", f"expected a memory size like \"16M\", got {mem!r}") from None
    for key, types, what in (("max_insns", int, "a positive integer"),
                             ("timeout", (int, float), "a positive number of seconds"),
                             ("quantum", int, "a positive integer")):
        if (value := t.positive(key, types, what)) is not None:
            limits[key] = value
    why = t.get("why", str, "a string") or ""
    expect = _expect(path, label, t.get("expect", dict, "a table [check.expect]",
                                        required=True))
    return HiddenCheck(path, name, lab, program, float(score), expect, limits, why)


def _program(t: _Table, path: Path) -> tuple[Path, ...]:
    raw = t.get("program", (str, list), "a file name or a list of source files",
                required=True)
    names = [raw] if isinstance(raw, str) else raw
    if not names or not all(isinstance(n, str) and n for n in names):
        raise t.error("program", f"expected a file name or a list of them, got {raw!r}")
    files = tuple((path.parent / n) for n in names)
    kinds = {f.suffix in SOURCE_SUFFIXES for f in files}
    if len(files) > 1 and kinds != {True}:
        raise t.error("program", "a list must hold C/assembly sources (.c, .S, .s) only")
    for f in files:
        if not f.is_file():
            raise t.error("program", f"no such file: {f}")
    return files


def _expect(path: Path, label: str, raw: Mapping[str, Any]) -> Expect:
    t = _Table(path, f"{label} [check.expect]", raw, EXPECT_KEYS)
    status = t.get("status", int, "an exit status 0..255")
    if status is not None and not 0 <= status <= 255:
        raise t.error("status", f"expected an exit status 0..255, got {status!r}")
    reason = t.get("reason", str, f"one of {', '.join(REASONS)}")
    if reason is not None and reason not in REASONS:
        raise t.error("reason", f"expected one of {', '.join(REASONS)}, got {reason!r}")
    output = t.get("output", list, "a list of lines")
    if output is not None and not all(isinstance(line, str) for line in output):
        raise t.error("output", "expected a list of strings (lines)")
    exact = t.get("output_exact", str, "a string")
    fault = t.get("fault", dict, "a table { vector, eip, cr2, error_code }")
    if fault is not None:
        ft = _Table(path, f"{label} [check.expect.fault]", fault, FAULT_KEYS)
        for key in fault:
            if ft.get(key, int, "an integer") < 0:
                raise ft.error(key, f"expected an integer >= 0, got {fault[key]!r}")
    if status is None and reason is None and output is None and exact is None \
            and fault is None:
        raise HiddenCheckError(f"{path}: {label} [check.expect]: expects nothing (give "
                               f"status, reason, output, output_exact or fault)")
    return Expect(status, reason, tuple(output) if output is not None else None, exact,
                  dict(fault) if fault is not None else None)


# ------------------------------------------------------------ building
def prepare(checks: Sequence[HiddenCheck], lab: Lab) -> list[Check]:
    """Make the Checks, building every program once (cached) unless the
    lab builds them with the student's code (``Lab.program_builder``)."""
    return [as_check(c, None if lab.program_builder and c.is_source else program_file(c))
            for c in checks]


def program_file(check: HiddenCheck) -> Path:
    """The ELF file of a check: built from its sources, or given."""
    if not check.is_source:
        return check.program[0]
    from pynova import toolchain

    try:
        tc = toolchain.find_toolchain()
        target = _cache_dir() / f"{check.program[0].stem}-{_build_key(check, tc)}.elf"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            toolchain.build_program(list(check.program), target, toolchain=tc)
    except toolchain.ToolchainError as err:
        first = str(err).splitlines()[0] if str(err) else "build failed"
        raise HiddenCheckError(f"{check.file}: check {check.name!r}: key 'program': "
                               f"cannot build: {first}") from None
    except OSError as err:
        raise HiddenCheckError(f"{check.file}: check {check.name!r}: cannot build: "
                               f"{err.strerror or err}") from None
    return target


def _cache_dir() -> Path:
    from pynova.toolchain import BUILD_DIR_ENV

    env = os.environ.get(BUILD_DIR_ENV)
    base = Path(env) if env else Path.home() / ".cache" / "pynova"
    return base / "lab-checks"


def _build_key(check: HiddenCheck, tc: Any) -> str:
    """A key of the check's sources, pynova's user files and the toolchain."""
    from pynova.toolchain import CFLAGS, USER_DIR

    h = hashlib.sha256()
    h.update(tc.identity().encode() + b"\0" + " ".join(CFLAGS).encode())
    for src in check.program:
        h.update(b"\0src\0" + src.read_bytes())
    for folder, dirs, files in sorted(os.walk(USER_DIR)):
        dirs[:] = sorted(d for d in dirs if d not in ("examples", "__pycache__"))
        for name in sorted(files):
            h.update(b"\0" + name.encode() + b"\0")
            h.update(Path(folder, name).read_bytes())
    return h.hexdigest()[:16]


# ------------------------------------------------------------- running
def as_check(spec: HiddenCheck, elf: Path | None) -> Check:
    """The Check of ``spec``: run ``elf``, or (None) the program the lab
    builds from the sources with the student's code."""
    limits = dict(spec.limits)
    timeout = None
    if "timeout" in limits:
        timeout = float(limits["timeout"]) + TIMEOUT_MARGIN

    def run(ctx: CheckContext) -> None:
        image = elf.read_bytes() if elf is not None else _build_with_student(ctx, spec)
        result = ctx.run(image, name=spec.program[0].stem, **limits)
        compare(spec, result)

    return Check(spec.name, spec.score, run, timeout=timeout)


def _build_with_student(ctx: CheckContext, spec: HiddenCheck) -> bytes:
    import tempfile

    builder = ctx.lab.program_builder
    assert builder is not None
    with tempfile.TemporaryDirectory(prefix="pynova-check-") as tmp:
        return builder(ctx.student, spec.program, Path(tmp) / "program.elf").read_bytes()


def compare(spec: HiddenCheck, result: RunResult) -> None:
    """Raise CheckFailed at the first expectation the run does not meet."""
    e = spec.expect
    output = result.output  # the kernel's lines and the program's, as `pynova run` shows them
    got = describe(result)
    why = spec.why
    if e.reason is not None and result.reason != e.reason:
        raise fail(f"the run to end by {e.reason!r}", got, why)
    if e.status is not None and result.status != e.status:
        raise fail(f"exit status {e.status}", got, why)
    if e.fault is not None:
        _compare_fault(e.fault, result, got, why)
    if e.output is not None:
        missing = _missing_line(e.output, output)
        if missing is not None:
            raise fail(f"the line {missing!r} in the output (after the lines before it: "
                       f"{list(e.output)!r})", f"{got}; the output was:\n{_quote(output)}",
                       why)
    own = program_output(result)
    if e.output_exact is not None and own != e.output_exact:
        raise fail(f"exactly this output from the program:\n{_quote(e.output_exact)}",
                   f"{got}; the program printed:\n{_quote(own)}", why)


def _compare_fault(want: Mapping[str, int], result: RunResult, got: str, why: str) -> None:
    f = result.fault
    wanted = ", ".join(f"{k}={v:#x}" for k, v in want.items()) or "any"
    if f is None:
        raise fail(f"a fault ({wanted})", got, why)
    for key, value in want.items():
        if getattr(f, key) != value:
            raise fail(f"a fault with {wanted}", f"{key}={getattr(f, key):#x} ({got})", why)


def _missing_line(lines: Sequence[str], output: str) -> str | None:
    """The first of ``lines`` not found, in order, among the output's lines."""
    have = iter(line.rstrip() for line in output.splitlines())
    for want in lines:
        if not any(line == want.rstrip() for line in have):
            return want
    return None


def describe(result: RunResult) -> str:
    if result.fault is not None:
        f = result.fault
        return (f"the program faulted: {f.name} (vector {f.vector}) at eip={f.eip:#x} "
                f"cr2={f.cr2:#x} error code {f.error_code:#x}, exit status {result.status}")
    text = f"the run ended by {result.reason!r} with exit status {result.status}"
    return f"{text} ({result.message})" if result.message else text


def _quote(text: str, limit: int = 20) -> str:
    lines = text.rstrip("\n").splitlines()
    if len(lines) > limit:
        lines = [f"... {len(lines) - limit} lines before ..."] + lines[-limit:]
    return "\n".join(f"  | {line}" for line in lines) or "  | (nothing)"
