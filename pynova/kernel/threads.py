"""threads: the thread calls thr_create (call 4) and thr_yield (call 5),
pynova's own thread parts and the solution of lab threads (the course's
lab 12: cooperative threads in a circular queue).

The region below is what a student's workspace holds (``pynova lab start
threads DIR``). The kernel calls the two functions through its Parts
(parts.py) with the task's ``Threads`` (sched.py). The kernel does the
rest: it saves every register of a thread that enters it into the
thread's Ec, runs the head of the queue, ``ready[0]``, and loads its
registers; a yield only rotates the queue, and the kernel switches to the
new head once the CPU has stopped (the system call asks it to,
syscall.py).
"""

# lab threads: begin
from __future__ import annotations

from pynova.kernel.layout import USER_END
from pynova.kernel.sched import Threads

#: What thr_create returns when it makes no thread (the user's -1).
ERROR = 0xFFFFFFFF


def thr_create(threads: Threads, eip: int, stack_top: int) -> int:
    """A new thread of the calling task that starts at ``eip`` with esp =
    ``stack_top``; 0, or ERROR when it cannot be made.

    ``threads.ready`` is the circle of ready threads (a deque); its head,
    ``ready[0]``, is the running one: here, the thread that called
    thr_create (``threads.current``). ``threads.new_thread(eip,
    stack_top)`` makes a thread (an Ec: its registers zero but eip, esp,
    eflags and the segments) without queueing it; ``threads.max_ready``
    is how many threads may be alive at once.
    """
    # TODO(step 1): refuse what cannot be a user thread, before anything changes.
    #   eip must lie in user space (below USER_END, 0xC0000000), stack_top
    #   at most USER_END (the stack grows down from it: its first push
    #   goes below), and no more than threads.max_ready threads may be in
    #   the circle. Return ERROR then, with the queue as it was and no
    #   thread made.
    # solution begin
    if eip >= USER_END or stack_top > USER_END or len(threads.ready) >= threads.max_ready:
        return ERROR
    # solution end

    # TODO(step 2): make the thread and put it right after its creator.
    #   threads.new_thread(eip, stack_top) makes it. The course's rule: the
    #   new thread goes right after the creator in the circle (the creator
    #   is the head, ready[0]), so that a yield right after a create runs
    #   the newest thread. Return 0.
    # solution begin
    threads.ready.insert(1, threads.new_thread(eip, stack_top))
    return 0
    # solution end


def thr_yield(threads: Threads) -> None:
    """The running thread gives the CPU to the next one in the circle."""
    # TODO(step 3): rotate the circle by one.
    #   The running thread is the head, ready[0]: move it to the back, so
    #   that the next thread becomes the head, and the kernel runs it. The
    #   kernel has kept every register of the running thread in its Ec,
    #   so the thread object itself goes to the back (a new thread made at
    #   its eip would lose the rest of its registers).
    # solution begin
    threads.ready.rotate(-1)
    # solution end
# lab threads: end
