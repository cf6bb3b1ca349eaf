"""limits: what one run may use, instructions and wall-clock time
(docs/ABI.md, "Limits").

The time limit is a deadline on the monotonic clock, fixed when the run
starts, before the module is loaded: loading, running and explaining a
fault all count. The kernel checks the deadline before every slice, so no
kind of trap (a system call that stops the CPU, a budget, a breakpoint)
can overtake it; a ``Watchdog`` thread stops the CPU at the deadline when
a slice runs long, since the CPU runs guest code in C where no Python check
can run. When a lab's part (a student's Python) runs at the deadline, no
CPU runs to be stopped: the watchdog raises ``TimeUp`` in the kernel's
thread instead, which interrupts a Python loop between two bytecodes.
"""

from __future__ import annotations

import ctypes
import math
import threading
import time
from collections.abc import Callable

#: Unicorn counts instructions in a 64-bit size_t; the budget adds one.
MAX_INSNS = (1 << 63) - 1
#: The watchdog waits in steps of this many seconds (a wait must stay
#: below threading.TIMEOUT_MAX, whatever the limit).
WAIT_STEP = 3600.0


def check_limits(max_insns: object = None, timeout: object = None) -> None:
    """ValueError unless each given limit is usable: ``max_insns`` a
    positive integer, ``timeout`` a positive, finite number of seconds."""
    if max_insns is not None and (isinstance(max_insns, bool) or not isinstance(max_insns, int)
                                  or not 0 < max_insns <= MAX_INSNS):
        raise ValueError(f"max_insns must be a positive integer below 2**63, not {max_insns!r}")
    if timeout is not None and (isinstance(timeout, bool)
                                or not isinstance(timeout, (int, float))
                                or not math.isfinite(timeout) or timeout <= 0):
        raise ValueError(f"timeout must be a finite number of seconds above 0, not {timeout!r}")


class TimeUp(BaseException):
    """The time limit ran out while a lab's part ran (raised in the kernel's
    thread; a BaseException, so that a part's ``except Exception`` lets it
    through). The kernel ends the task as at any other deadline."""


def raise_in_thread(thread_id: int, exc: type[BaseException] | None) -> None:
    """Have the thread raise ``exc`` at its next bytecode; None takes back
    one not raised yet (CPython's PyThreadState_SetAsyncExc)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), None if exc is None else ctypes.py_object(exc))


class Limits:
    """A run's limits; the clock starts when the object is made."""

    def __init__(self, max_insns: int | None = None, timeout: float | None = None) -> None:
        check_limits(max_insns, timeout)
        self.max_insns = max_insns
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout

    def time_left(self) -> float | None:
        """Seconds until the deadline (0 once it passed), None without one."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def time_is_up(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


class Watchdog:
    """Calls ``fire`` once at ``deadline`` (monotonic seconds) from its own
    thread, unless cancelled first. After ``cancel`` returns, ``fire`` is
    neither running nor called any more (the CPU may be freed then)."""

    def __init__(self, deadline: float, fire: Callable[[], None]) -> None:
        self._deadline = deadline
        self._fire = fire
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._wait, name="pynova-watchdog", daemon=True)
        self._thread.start()

    def _wait(self) -> None:
        while not self._cancelled.is_set():
            left = self._deadline - time.monotonic()
            if left <= 0:
                break
            self._cancelled.wait(min(left, WAIT_STEP))
        with self._lock:
            if not self._cancelled.is_set():
                self._fire()

    def cancel(self) -> None:
        with self._lock:
            self._cancelled.set()
