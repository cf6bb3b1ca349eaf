"""Running a lab's checks, stage by stage, each in a process of its own.

Every check forks a child (``isolate.run_isolated``) that loads the
student's code, builds a CheckContext and calls the check. What comes back
is a CheckResult: passed or failed, the score, and a message that says
what was expected, what happened and why (the student's own traceback
when their code raised). A check that needs an earlier one which failed
still runs, and says so when it fails too. When the student's code does
not load at all, the first check shows why and the others are not run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pynova.kernel.parts import PartError
from pynova.labs.isolate import Isolated, Progress, run_isolated
from pynova.labs.lab import Check, CheckContext, CheckFailed, Lab, StudentCodeError, Workspace
from pynova.labs.limits import CHECK_MEM_LIMIT, CHECK_TIMEOUT, format_size
from pynova.labs.student import one_line, student_traceback

#: How the first check's message begins when the student's code does not
#: load; ``lab grade`` recognises it to fill in a submission's error.
LOAD_FAILED = "your code does not load"
#: The tail of the check process's output shown with a failure.
OUTPUT_LINES = 15
#: What Unicorn prints (and exits) when it cannot map its translation cache.
UNICORN_NO_CACHE = "Could not allocate dynamic translator buffer"


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    score: float
    max_score: float
    message: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "score": number(self.score),
                "max_score": number(self.max_score), "message": self.message}


@dataclass(frozen=True)
class LabReport:
    """The result of one workspace's checks."""

    lab: str
    checks: tuple[CheckResult, ...]

    @property
    def score(self) -> float:
        return sum(c.score for c in self.checks)

    @property
    def max_score(self) -> float:
        return sum(c.max_score for c in self.checks)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def seconds(self) -> float:
        return sum(c.seconds for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        """Exactly ``{"lab", "checks": [...], "score", "max_score"}``."""
        return {"lab": self.lab, "checks": [c.to_json() for c in self.checks],
                "score": number(self.score), "max_score": number(self.max_score)}


def number(x: float) -> float | int:
    """2.0 -> 2 (scores are whole numbers but for partial credit)."""
    return int(x) if float(x).is_integer() else round(x, 4)


@dataclass(frozen=True)
class CheckLimits:
    """The limits of each check's process (a check may ask for more time)."""

    timeout: float = CHECK_TIMEOUT
    mem_limit: int | None = CHECK_MEM_LIMIT


def run_checks(lab: Lab, workspace: Workspace, checks: Sequence[Check] | None = None,
               limits: CheckLimits = CheckLimits()) -> LabReport:
    """Run ``checks`` (default: the lab's) against the workspace."""
    todo = list(lab.checks if checks is None else checks)
    if lab.prepare is not None:
        lab.prepare()
    results: list[CheckResult] = []
    load_failure: str | None = None
    for check in todo:
        if load_failure is not None:
            results.append(CheckResult(check.name, False, 0, check.max_score,
                                       f"not run: {LOAD_FAILED} (see {load_failure!r})"))
            continue
        result, did_not_load = run_one(lab, workspace, check, limits)
        if did_not_load:
            load_failure = check.name
        results.append(with_dependencies(result, check, results))
    return LabReport(lab.name, tuple(results))


def with_dependencies(result: CheckResult, check: Check,
                      earlier: Sequence[CheckResult]) -> CheckResult:
    """Add to a failure the earlier checks it builds on that failed too."""
    if result.passed:
        return result
    failed = [r.name for r in earlier if r.name in check.needs and not r.passed]
    if not failed:
        return result
    names = ", ".join(repr(n) for n in failed)
    note = (f"note: this check builds on {names}, which failed too; "
            f"fix {'that' if len(failed) == 1 else 'those'} first")
    return CheckResult(result.name, False, result.score, result.max_score,
                       f"{result.message}\n{note}", result.seconds)


def run_one(lab: Lab, workspace: Workspace, check: Check,
            limits: CheckLimits) -> tuple[CheckResult, bool]:
    """One check in a child process: (its result, whether the student's
    code failed to load)."""
    timeout = check.timeout or limits.timeout

    def in_child(progress: Progress) -> dict[str, Any]:
        return _check_in_child(lab, workspace, check, limits, progress)

    iso = run_isolated(in_child, timeout=timeout, mem_limit=limits.mem_limit)
    return _result(check, iso, timeout, limits)


def _result(check: Check, iso: Isolated, timeout: float,
            limits: CheckLimits) -> tuple[CheckResult, bool]:
    def failed(message: str, score: float = 0) -> CheckResult:
        score = max(0.0, min(float(score), check.max_score))
        return CheckResult(check.name, False, score, check.max_score, message, iso.seconds)

    value = iso.value if isinstance(iso.value, dict) else None
    if value is None:
        loaded = iso.progress == "loaded"
        if not loaded:
            return failed(_not_loaded_message(iso, timeout)), True
        if iso.ended == "timeout":
            return failed(_timeout_message(timeout, iso.output)), False
        return failed(_died_message(iso, limits)), False
    kind = value.get("kind")
    message = str(value.get("message", ""))
    if kind == "pass":
        return CheckResult(check.name, True, check.max_score, check.max_score, "",
                           iso.seconds), False
    if kind == "load":
        return failed(f"{LOAD_FAILED}: {message}"), True
    if kind == "fail":
        score = value.get("score", 0)
        return failed(message, score if isinstance(score, int | float) else 0), False
    return failed(message + _output_tail(iso.output)), False


def _not_loaded_message(iso: Isolated, timeout: float) -> str:
    if iso.ended == "timeout":
        what = (f"importing it did not finish within the check's {timeout:g} s limit "
                f"(an endless loop at import time?)")
    else:
        what = f"the process ended ({iso.detail}) while importing it"
    return f"{LOAD_FAILED}: {what}" + _output_tail(iso.output)


def _timeout_message(timeout: float, output: str) -> str:
    return (f"expected: the check to finish within its {timeout:g} s limit\n"
            f"got:      still running after {timeout:g} s; stopped it\n"
            f"why:      your code probably never returns (an endless loop, or waiting "
            f"for something that never happens)" + _output_tail(output))


def _died_message(iso: Isolated, limits: CheckLimits) -> str:
    mem = f" or running out of its {format_size(limits.mem_limit)} of address space " \
          f"(RLIMIT_AS)" if limits.mem_limit else ""
    if UNICORN_NO_CACHE in iso.output and limits.mem_limit:
        return (f"expected: the check's process to report a result\n"
                f"got:      the emulator could not reserve its translation cache (about "
                f"1 GiB) within the check's {format_size(limits.mem_limit)} address-space "
                f"limit\nwhy:      the limit is too small for this check: raise --mem-limit")
    return (f"expected: the check's process to report a result\n"
            f"got:      it ended ({iso.detail}) without one\n"
            f"why:      something ended the process itself: os._exit, a signal, a crash "
            f"in native code{mem}" + _output_tail(iso.output))


def _output_tail(output: str) -> str:
    lines = output.rstrip().splitlines()[-OUTPUT_LINES:]
    if not lines:
        return ""
    return "\nits last output:\n" + "\n".join(f"  {line}" for line in lines)


def _check_in_child(lab: Lab, workspace: Workspace, check: Check, limits: CheckLimits,
                    progress: Progress) -> dict[str, Any]:
    """What the child does: load, check, and describe how it went."""
    reserve = bytearray(1 << 20)  # for a report after a MemoryError
    try:
        student = lab.load(workspace)
    except StudentCodeError as err:
        return {"kind": "load", "message": str(err)}
    progress("loaded")
    ctx = CheckContext(lab, workspace, student, lab.limits)
    try:
        check.run(ctx)
    except CheckFailed as failure:
        return {"kind": "fail", "message": failure.message, "score": failure.score}
    except StudentCodeError as err:  # e.g. the lab built the student's C and it failed
        return {"kind": "fail", "message": str(err), "score": 0}
    except PartError as err:  # the kernel refused what the student's part handed it
        return {"kind": "fail", "message": err.message, "score": 0}
    except BaseException as exc:  # noqa: B036 - the student's SystemExit fails the check too
        del reserve
        return {"kind": "error", "message": describe_exception(exc, student.files,
                                                               workspace, limits)}
    return {"kind": "pass"}


def describe_exception(exc: BaseException, files: Sequence[Any], workspace: Workspace,
                       limits: CheckLimits) -> str:
    """A check stopped by an exception: the student's traceback when
    their code raised it, else one line saying where pynova raised it."""
    trace = student_traceback(exc, files, workspace.path)
    why = ""
    if isinstance(exc, MemoryError) and limits.mem_limit:
        why = (f"\nwhy:      the check's process may use {format_size(limits.mem_limit)} "
               f"of address space (RLIMIT_AS), and your code asked for more")
    elif isinstance(exc, RecursionError):
        why = "\nwhy:      a function called itself without end"
    if trace is not None:
        return f"your code raised {type(exc).__name__}:\n{trace}{why}"
    return (f"the check stopped: pynova raised {one_line(exc)}, not in your code; "
            f"it may have been given something your code returned{why}")
