"""sched: round-robin scheduling of a task's execution contexts.

The ready queue's head is the context that runs next. A context leaves the
head by yielding, by using up its quantum (counted in executed
instructions, so a run is deterministic for a given program and quantum) or
by ending. A lone context runs without a quantum: nothing could take over.

``Threads`` is what the thread parts (threads.py, lab threads) see of it.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

from pynova.kernel.ec import Ec

#: live contexts a task may have at once; thr_create fails beyond this
MAX_READY = 1024


class RoundRobin:
    """The ready queue and the time-slice policy of one kernel."""

    def __init__(self, quantum: int | None) -> None:
        self.quantum = quantum
        self.ready: collections.deque[Ec] = collections.deque()
        #: The context the CPU runs (or ran last): the head when its slice began.
        self.current: Ec = None  # type: ignore[assignment]

    def admit(self, ec: Ec) -> None:
        """A new context queues behind every ready one."""
        self.ready.append(ec)

    def rotate(self) -> None:
        """The head goes to the back: the next context runs."""
        self.ready.rotate(-1)

    def remove(self, ec: Ec) -> bool:
        """Take ``ec`` off the queue; True when none is left."""
        self.ready.remove(ec)
        return not self.ready

    def sliced(self) -> bool:
        """Whether the running context has a quantum."""
        return self.quantum is not None and len(self.ready) > 1

    def budget(self, insns_left: int | None, single_step: bool) -> int | None:
        """Instructions the head may run before the CPU must stop."""
        if single_step:
            return 1
        quantum = self.quantum
        if quantum is None or len(self.ready) < 2:  # not sliced(): spelled out, every slice
            return insns_left
        return quantum if insns_left is None or quantum < insns_left else insns_left


class Threads:
    """What thr_create and thr_yield work with (lab threads): the ready
    queue, a circle whose head ``ready[0]`` runs, and new threads."""

    max_ready = MAX_READY  # live threads a task may have at once

    def __init__(self, sched: RoundRobin, new_thread: Callable[[int, int], Ec]) -> None:
        self._sched = sched
        #: new_thread(eip, stack_top): a new Ec of the task that starts at eip
        #: with esp = stack_top; not queued yet (its id is its number).
        self.new_thread = new_thread

    @property
    def ready(self) -> collections.deque[Ec]:
        """The kernel's ready queue itself (change it in place: the kernel
        runs this deque, not one put in its place)."""
        return self._sched.ready

    @property
    def current(self) -> Ec:
        """The thread that made the call."""
        return self._sched.current
