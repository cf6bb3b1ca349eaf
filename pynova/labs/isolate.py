"""Run a function in a forked child with a wall-clock and a memory limit.

The child (forked after pynova is imported, so it starts at once) gets a
process group of its own, RLIMIT_AS, a CPU-time backstop (RLIMIT_CPU, for
the case that the parent dies), no core files, and stdout/stderr on a pipe
of which the parent keeps the last few KiB. It sends the function's
JSON-able value back on a second pipe (``progress`` notes first, if any).
When the limit runs out the parent kills the whole process group; a child
that dies without a value is reported with how it ended.

This isolates mistakes (an endless loop, a runaway allocation, a crash in
native code, ``os._exit``), not malice: the child runs with the caller's
user rights, can read and write its files, and could forge its own result.
"""

from __future__ import annotations

import faulthandler
import json
import math
import os
import resource
import selectors
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: The tail of the child's stdout/stderr that is kept.
OUTPUT_TAIL = 4096
#: The most a child may send back (its value, as JSON).
MAX_RESULT = 1 << 20
#: Memory set aside in the child so that a MemoryError can still be reported.
RESERVE = 1 << 20

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Isolated:
    """How a child ended: ``value`` is what the function returned (None if
    the child sent nothing); ``ended`` is "ok", "timeout" or "died"."""

    value: Any
    ended: str
    detail: str          # e.g. "killed by SIGKILL", "exit status 3"
    output: str          # the tail of what the child wrote on stdout/stderr
    progress: str        # the last progress note the child sent
    seconds: float


def run_isolated(fn: Callable[[Progress], Any], *, timeout: float,
                 mem_limit: int | None) -> Isolated:
    """Call ``fn(progress)`` in a forked child and return what happened.
    ``progress(note)`` lets the child say how far it got."""
    result_r, result_w = os.pipe()
    out_r, out_w = os.pipe()
    start = time.monotonic()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError as err:
        for fd in (result_r, result_w, out_r, out_w):
            os.close(fd)
        return Isolated(None, "died", f"could not be started: {err.strerror or err}", "",
                        "", 0.0)
    if pid == 0:  # pragma: no cover - the child never returns
        _child(fn, result_r, result_w, out_r, out_w, timeout, mem_limit)
    os.close(result_w)
    os.close(out_w)
    try:
        try:
            os.setpgid(pid, pid)  # also done by the child: whoever is first
        except OSError:
            pass
        data, output, timed_out = _collect(pid, result_r, out_r, start + timeout)
    finally:
        _kill_group(pid)
        _, status = os.waitpid(pid, 0)
        os.close(result_r)
        os.close(out_r)
    seconds = time.monotonic() - start
    value, progress = _decode(data)
    text = output.decode("utf-8", "replace")
    if timed_out and value is None:
        return Isolated(None, "timeout", f"still running after {timeout:g} s", text,
                        progress, seconds)
    if value is None:
        return Isolated(None, "died", describe_status(status), text, progress, seconds)
    return Isolated(value, "ok", describe_status(status), text, progress, seconds)


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by {name}"
    return f"exit status {os.WEXITSTATUS(status)}"


# --------------------------------------------------------------- parent
def _collect(pid: int, result_r: int, out_r: int, deadline: float) -> tuple[bytes, bytes, bool]:
    """Read both pipes until the result pipe closes (the child is done),
    the child exits, or the deadline. Returns (result, output tail, timed out)."""
    result = bytearray()
    output = bytearray()
    sel = selectors.DefaultSelector()
    sel.register(result_r, selectors.EVENT_READ, "result")
    sel.register(out_r, selectors.EVENT_READ, "output")
    pidfd = _pidfd(pid)
    if pidfd is not None:
        sel.register(pidfd, selectors.EVENT_READ, "exit")
    done = False
    timed_out = False
    try:
        while not done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in sel.select(remaining):
                if key.data == "exit":
                    done = True
                    continue
                chunk = os.read(key.fd, 65536)
                if key.data == "result":
                    if not chunk:
                        done = True
                        sel.unregister(result_r)
                    elif len(result) < MAX_RESULT:
                        result += chunk
                elif not chunk:
                    sel.unregister(out_r)
                else:
                    output += chunk
                    del output[:-OUTPUT_TAIL]
        _drain(result_r, result, MAX_RESULT)
        _drain(out_r, output, None)
        del output[:-OUTPUT_TAIL]
    finally:
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
    return bytes(result), bytes(output), timed_out


def _pidfd(pid: int) -> int | None:
    open_pidfd = getattr(os, "pidfd_open", None)
    if open_pidfd is None:
        return None
    try:
        return int(open_pidfd(pid))
    except OSError:
        return None


def _drain(fd: int, buf: bytearray, cap: int | None) -> None:
    """Whatever is left in the pipe, without waiting for a writer that
    lingers (a grandchild may still hold it open)."""
    os.set_blocking(fd, False)
    try:
        while chunk := os.read(fd, 65536):
            if cap is None or len(buf) < cap:
                buf += chunk
            if cap is None:
                del buf[:-OUTPUT_TAIL]
    except (BlockingIOError, OSError):
        pass


def _kill_group(pid: int) -> None:
    """Kill the child's process group (the child is not reaped yet, so its
    id cannot name another group)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _decode(data: bytes) -> tuple[Any, str]:
    """(value, last progress note) from the child's JSON lines."""
    value, progress = None, ""
    for line in data.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            break
        if isinstance(message, dict) and "progress" in message:
            progress = str(message["progress"])
        elif isinstance(message, dict) and "value" in message:
            value = message["value"]
    return value, progress


# ---------------------------------------------------------------- child
def _child(fn: Callable[[Progress], Any], result_r: int, result_w: int, out_r: int,
           out_w: int, timeout: float, mem_limit: int | None) -> None:  # pragma: no cover
    status = 70
    try:
        os.setpgid(0, 0)
        os.close(result_r)
        os.close(out_r)
        _redirect_output(out_w)
        set_limits(timeout, mem_limit)

        def progress(note: str) -> None:
            _write_all(result_w, json.dumps({"progress": note}).encode() + b"\n")

        value = fn(progress)
        data = json.dumps({"value": value}).encode() + b"\n"
        sys.stdout.flush()
        sys.stderr.flush()
        _write_all(result_w, data)
        os.close(result_w)
        status = 0
    except BaseException:  # noqa: B036 - nothing may escape the child
        try:
            traceback.print_exc()
            sys.stderr.flush()
        except BaseException:  # noqa: B036
            pass
    finally:
        os._exit(status)


def _redirect_output(out_w: int) -> None:
    # A fault handler inherited from the parent (pytest enables one) would
    # write to the parent's stderr when the child crashes.
    faulthandler.disable()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    os.close(out_w)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", buffering=1, closefd=False, errors="replace")  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False, errors="replace")  # noqa: SIM115


def set_limits(timeout: float | None, mem_limit: int | None) -> None:
    """RLIMIT_AS (soft and hard, so the code under test cannot raise it),
    a CPU-time backstop a little above ``timeout``, and no core files."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if mem_limit is not None:
        _lower(resource.RLIMIT_AS, mem_limit)
    if timeout is not None:
        _lower(resource.RLIMIT_CPU, math.ceil(timeout) + 1)


def _lower(which: int, value: int) -> None:
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
