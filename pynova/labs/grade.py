"""``pynova lab grade``: many submissions, each checked in a process of its
own, in parallel.

A submission is a workspace directory or an archive (unpacked safely into
a temporary directory). Each is checked by ``python -P -m pynova lab check
--json`` in its own process group, with RLIMIT_AS (soft and hard) set
before it starts and a total time limit after which the group is killed.
A submission that cannot be unpacked, does not load, crashes, hangs or
prints something that is not a report gets zero and the reason; the batch
always completes. One event loop drives the processes (no threads), so
``preexec_fn`` is safe to use.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pynova.labs import archive
from pynova.labs.checks import LOAD_FAILED, CheckResult, LabReport, number
from pynova.labs.isolate import describe_status, set_limits
from pynova.labs.lab import Check, Lab
from pynova.labs.limits import CHECK_MEM_LIMIT, CHECK_TIMEOUT

#: The most a submission's check process may print on stdout.
MAX_STDOUT = 8 << 20
STDERR_TAIL = 4096
#: Added to the sum of the checks' limits for the default total time limit.
TOTAL_MARGIN = 30.0


@dataclass(frozen=True)
class GradeOptions:
    lab_spec: str                  # the lab's name, or its file (for the child)
    checks_dir: Path | None = None
    jobs: int = 0                  # 0: one per CPU
    timeout: float | None = None   # per submission; None: from the checks' limits
    check_timeout: float = CHECK_TIMEOUT
    mem_limit: int = CHECK_MEM_LIMIT


@dataclass(frozen=True)
class Graded:
    """One submission's result: its report, and why it got zero if it did."""

    name: str
    source: Path
    report: LabReport
    error: str | None
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "score": number(self.report.score),
                "max_score": number(self.report.max_score),
                "checks": [c.to_json() for c in self.report.checks], "error": self.error}


@dataclass
class _Job:
    index: int
    name: str
    source: Path
    directory: Path
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    deadline: float = 0.0
    ended: float = 0.0
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    open_pipes: int = 2
    exited: bool = False
    problem: str | None = None
    pidfd: int | None = None


def submission_names(paths: Sequence[Path]) -> list[str]:
    """A unique name per submission: the directory's or archive's name."""
    names: list[str] = []
    for path in paths:
        base = archive.stem(path) if archive.is_archive(path) else path.resolve().name
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


def default_timeout(checks: Sequence[Check], check_timeout: float) -> float:
    return sum(c.timeout or check_timeout for c in checks) + TOTAL_MARGIN


def grade(lab: Lab, checks: Sequence[Check], paths: Sequence[Path], options: GradeOptions,
          progress: Callable[[int, int, Graded], None] | None = None) -> list[Graded]:
    """Grade every submission; results in the order given."""
    expected = [(c.name, c.max_score) for c in checks]
    timeout = options.timeout or default_timeout(checks, options.check_timeout)
    jobs = options.jobs or os.cpu_count() or 1
    results: dict[int, Graded] = {}
    if lab.prepare is not None:
        lab.prepare()  # once here, not racing in every submission's process

    def finished(graded: Graded, index: int) -> None:
        results[index] = graded
        if progress is not None:
            progress(len(results), len(paths), graded)

    with tempfile.TemporaryDirectory(prefix="pynova-grade-") as tmp:
        work = Path(tmp)
        neutral = work / "cwd"
        neutral.mkdir()
        pending: list[_Job] = []
        for i, (path, name) in enumerate(zip(paths, submission_names(paths), strict=True)):
            try:
                directory = _prepare(path, work / f"{i:04d}")
            except archive.ArchiveError as err:
                finished(_zero(lab, name, path, expected, f"archive refused: {err}", 0.0), i)
                continue
            pending.append(_Job(i, name, path, directory))
        command = _command(options, timeout)
        _run_all(pending, jobs, timeout, command, options.mem_limit, neutral,
                 lambda job: finished(_result(lab, job, expected), job.index))
    return [results[i] for i in range(len(paths))]


def _prepare(path: Path, target: Path) -> Path:
    if path.is_dir():
        return path.resolve()
    if archive.is_archive(path):
        return archive.extract(path, target)
    raise archive.ArchiveError(f"{path.name} is neither a directory nor an archive "
                               f"({', '.join(archive.ARCHIVE_SUFFIXES)})")


def _command(options: GradeOptions, timeout: float) -> list[str]:
    # -P: the child's working directory never goes on sys.path.
    cmd = [sys.executable, "-P", "-m", "pynova", "lab", "check", "--json",
           "--lab", options.lab_spec, "--timeout", f"{options.check_timeout:g}",
           "--mem-limit", str(options.mem_limit)]
    if options.checks_dir is not None:
        cmd += ["--checks", str(options.checks_dir.resolve())]
    return cmd


def _child_env() -> dict[str, str]:
    """The parent's environment, with this pynova first on the module path."""
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    return env


# --------------------------------------------------------- the process loop
def _run_all(pending: list[_Job], jobs: int, timeout: float, command: list[str],
             mem_limit: int, cwd: Path, done: Callable[[_Job], None]) -> None:
    sel = selectors.DefaultSelector()
    running: list[_Job] = []
    queue = list(pending)
    env = _child_env()
    try:
        while queue or running:
            while queue and len(running) < jobs:
                job = queue.pop(0)
                _start(job, command, timeout, mem_limit, cwd, env, sel)
                running.append(job)
            now = time.monotonic()
            wait = max(0.0, min(j.deadline for j in running) - now)
            for key, _ in sel.select(wait):
                _on_event(key, sel)
            now = time.monotonic()
            for job in [j for j in running if _is_done(j, now)]:
                _finish(job, sel, now)
                running.remove(job)
                done(job)
    finally:
        for job in running:
            _finish(job, sel, time.monotonic())
        sel.close()


def _start(job: _Job, command: list[str], timeout: float, mem_limit: int, cwd: Path,
           env: dict[str, str], sel: selectors.BaseSelector) -> None:
    def limits() -> None:  # in the child, before exec
        set_limits(timeout + 5, mem_limit)

    job.started = time.monotonic()
    job.deadline = job.started + timeout
    try:
        job.proc = subprocess.Popen([*command, str(job.directory)], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                                    env=env, process_group=0, preexec_fn=limits)
    except OSError as err:
        job.problem = f"cannot start the check process: {err.strerror or err}"
        job.exited, job.open_pipes = True, 0
        return
    assert job.proc.stdout is not None and job.proc.stderr is not None
    for stream, kind in ((job.proc.stdout, "stdout"), (job.proc.stderr, "stderr")):
        os.set_blocking(stream.fileno(), False)
        sel.register(stream.fileno(), selectors.EVENT_READ, (job, kind))
    open_pidfd = getattr(os, "pidfd_open", None)
    if open_pidfd is not None:
        try:
            job.pidfd = int(open_pidfd(job.proc.pid))
            sel.register(job.pidfd, selectors.EVENT_READ, (job, "exit"))
        except OSError:
            job.pidfd = None


def _on_event(key: selectors.SelectorKey, sel: selectors.BaseSelector) -> None:
    job, kind = key.data
    if kind == "exit":
        job.exited = True
        sel.unregister(key.fd)
        return
    try:
        chunk = os.read(key.fd, 1 << 16)
    except BlockingIOError:
        return
    if not chunk:
        sel.unregister(key.fd)
        job.open_pipes -= 1
    elif kind == "stdout":
        job.stdout += chunk
        if len(job.stdout) > MAX_STDOUT and job.problem is None:
            job.problem = f"printed more than {MAX_STDOUT >> 20} MiB instead of a report"
            _kill(job)
    else:
        job.stderr += chunk
        del job.stderr[:-STDERR_TAIL]


def _is_done(job: _Job, now: float) -> bool:
    if job.open_pipes == 0 or job.problem is not None:
        return True
    if job.exited:
        return True
    if job.pidfd is None and job.proc is not None and job.proc.poll() is not None:
        return True
    if now >= job.deadline:
        job.problem = f"timed out: no report within {job.deadline - job.started:g} s"
        return True
    return False


def _finish(job: _Job, sel: selectors.BaseSelector, now: float) -> None:
    """Stop everything the submission started and reap its process."""
    job.ended = now
    if job.proc is None:
        return
    _kill(job)
    job.proc.wait()
    for stream in (job.proc.stdout, job.proc.stderr):
        if stream is None:
            continue
        try:
            sel.unregister(stream.fileno())
        except (KeyError, ValueError):
            pass
        _drain(stream.fileno(), job.stdout if stream is job.proc.stdout else job.stderr)
        stream.close()
    if job.pidfd is not None:
        try:
            sel.unregister(job.pidfd)
        except (KeyError, ValueError):
            pass
        os.close(job.pidfd)
        job.pidfd = None


def _drain(fd: int, buf: bytearray) -> None:
    try:
        while chunk := os.read(fd, 1 << 16):
            if len(buf) <= MAX_STDOUT:
                buf += chunk
    except OSError:
        pass


def _kill(job: _Job) -> None:
    if job.proc is not None and job.proc.returncode is None:
        try:
            os.killpg(job.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# ---------------------------------------------------------------- results
def _result(lab: Lab, job: _Job, expected: Sequence[tuple[str, float]]) -> Graded:
    seconds = job.ended - job.started
    if job.problem is not None:
        return _zero(lab, job.name, job.source, expected, job.problem, seconds)
    assert job.proc is not None
    status = job.proc.returncode
    stderr = job.stderr.decode("utf-8", "replace").strip().splitlines()
    last = stderr[-1] if stderr else ""
    if status not in (0, 1):
        how = describe_status(_wait_status(status))
        reason = last if status == 2 and last else f"the check process ended ({how})" + (
            f": {last}" if last else "")
        return _zero(lab, job.name, job.source, expected, reason, seconds)
    try:
        report = parse_report(job.stdout.decode("utf-8"), lab.name, expected)
    except ValueError as err:
        return _zero(lab, job.name, job.source, expected,
                     f"the check process printed no valid report ({err})", seconds)
    first = report.checks[0].message if report.checks else ""
    error = None
    if first.startswith(LOAD_FAILED):
        lines = [line.strip() for line in first.splitlines() if line.strip()]
        # "...: file.py does not import:" + a traceback ends in the exception.
        error = f"{LOAD_FAILED}: {lines[-1]}" if lines[0].endswith(":") and len(lines) > 1 \
            else lines[0]
    return Graded(job.name, job.source, report, error, seconds)


def _wait_status(returncode: int) -> int:
    """subprocess's returncode (-N for a signal) as a wait status."""
    return -returncode if returncode < 0 else returncode << 8


def parse_report(text: str, lab: str, expected: Sequence[tuple[str, float]]) -> LabReport:
    """The report a ``lab check --json`` printed, checked against the checks
    that were asked for (names in order; scores within their maximum)."""
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(data, dict) or data.get("lab") != lab:
        raise ValueError(f"not a report of lab {lab}")
    raw = data.get("checks")
    if not isinstance(raw, list) or len(raw) != len(expected):
        raise ValueError(f"expected {len(expected)} checks")
    checks = []
    for item, (name, max_score) in zip(raw, expected, strict=True):
        if not isinstance(item, dict) or item.get("name") != name:
            raise ValueError(f"expected the check {name!r}")
        passed = item.get("passed") is True
        score = item.get("score")
        if not isinstance(score, int | float) or isinstance(score, bool):
            raise ValueError(f"check {name!r} has no score")
        score = max_score if passed else max(0.0, min(float(score), max_score))
        checks.append(CheckResult(name, passed, score, max_score,
                                  str(item.get("message", ""))))
    return LabReport(lab, tuple(checks))


def _zero(lab: Lab, name: str, source: Path, expected: Sequence[tuple[str, float]],
          reason: str, seconds: float) -> Graded:
    checks = tuple(CheckResult(n, False, 0, m, f"not graded: {reason}") for n, m in expected)
    return Graded(name, source, LabReport(lab.name, checks), reason, seconds)


# --------------------------------------------------------------- outputs
def summary(lab: Lab, graded: Sequence[Graded]) -> dict[str, Any]:
    max_score = graded[0].report.max_score if graded else 0
    return {"lab": lab.name, "max_score": number(max_score),
            "submissions": [g.to_json() for g in graded]}


class Progress:
    """``graded 12/30 (alice: 7/10)`` on stderr: one line rewritten in place
    on a terminal, one line per submission otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()

    def __call__(self, done: int, total: int, graded: Graded) -> None:
        r = graded.report
        text = f"graded {done}/{total} ({graded.name}: {number(r.score)}/{number(r.max_score)}"
        text += f", {graded.error})" if graded.error else ")"
        if self.tty:
            self.stream.write(f"\r\x1b[K{text}" + ("\n" if done == total else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
