"""threads: the thread calls thr_create (call 4) and thr_yield (call 5),
pynova's own thread parts.

The kernel calls them through its Parts (parts.py) with the task's
``Threads`` (sched.py), so that lab threads' versions can stand in. A
yield only rotates the queue: the kernel switches to the new head once
the CPU has stopped (the system call asks it to, syscall.py).
"""

from __future__ import annotations

from pynova.kernel.layout import USER_END
from pynova.kernel.sched import Threads

ERROR = 0xFFFFFFFF


def thr_create(threads: Threads, eip: int, stack_top: int) -> int:
    """A new thread at ``eip`` with esp = ``stack_top``, queued behind
    every ready one; 0, or ERROR for a kernel address or too many threads."""
    if eip >= USER_END or stack_top > USER_END or len(threads.ready) >= threads.max_ready:
        return ERROR
    threads.ready.append(threads.new_thread(eip, stack_top))
    return 0


def thr_yield(threads: Threads) -> None:
    """The running thread (the head) goes to the back of the circle."""
    threads.ready.rotate(-1)
