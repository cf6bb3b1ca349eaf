"""Parts: the kernel functions a lab lets a student write.

The kernel calls each of them only through its ``Parts`` (``kernel.parts``),
pynova's own by default; a lab's ``pynova run --lab`` and checks give the
kernel a Parts with the student's function in place of one of them. Each
part gets a small object with what it may use (its "facade") and plain
numbers:

    root_invoke(k: RootTask) -> None                      lab elf     root_invoke.py
        start the boot module: read its ELF headers, map its segments,
        k.iret([eip, cs, eflags, esp, ss])
    insert_mapping(pt: PageDirectory, virt, phys, attr) -> None
                                                          lab ptab    insert_mapping.py
        one page into the page tables; OutOfMemory when a table is needed
    nbrk(heap: Heap, new_break) -> int                    lab brk     heap.py
        call 3: the previous break, the break for 0, 0 on failure
    thr_create(threads: Threads, eip, stack_top) -> int   lab threads threads.py
        call 4: a new thread, queued; 0, or 0xFFFFFFFF on failure
    thr_yield(threads: Threads) -> None                   lab threads threads.py
        call 5: rotate the ready queue (the kernel switches to its head)

The facades: RootTask (root_task.py), PageDirectory (ptab.py), Heap (pd.py),
Threads (sched.py). An exception a part raises ends the run and reaches the
caller of ``Kernel.run`` (``pynova run --lab`` shows a student's traceback).

The kernel checks what a part other than pynova's own hands back before it
uses it: a result for eax must be a 32-bit number, the break one too, and
the ready queue must hold every ready thread once and nothing else. A
part that breaks this ends the run with a ``PartError``: the student's
mistake, said as expected / got / why (pynova's own are trusted: the
checks cost nothing on the hot path).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from pynova.kernel import heap, root_invoke, threads
from pynova.kernel.ec import Ec, EcState
from pynova.kernel.insert_mapping import insert_mapping
from pynova.kernel.pd import Heap
from pynova.kernel.ptab import InsertMapping
from pynova.kernel.root_task import RootTask
from pynova.kernel.sched import Threads

NAMES = ("root_invoke", "insert_mapping", "nbrk", "thr_create", "thr_yield")


class Parts(NamedTuple):
    """The lab parts of one kernel (see the module's doc)."""

    root_invoke: Callable[[RootTask], None]
    insert_mapping: InsertMapping
    nbrk: Callable[[Heap, int], int]
    thr_create: Callable[[Threads, int, int], int]
    thr_yield: Callable[[Threads], None]

    def own(self, name: str) -> bool:
        """Whether part ``name`` is pynova's own."""
        return bool(getattr(self, name) is getattr(PYNOVA, name))


#: pynova's own parts: the kernel's default, and the labs' solutions.
PYNOVA = Parts(root_invoke=root_invoke.root_invoke, insert_mapping=insert_mapping,
               nbrk=heap.nbrk, thr_create=threads.thr_create, thr_yield=threads.thr_yield)


WORD_MAX = 0xFFFFFFFF


class PartError(Exception):
    """A part handed the kernel something it cannot use (a student's
    mistake): what the kernel expected, what it got, and why it matters."""

    def __init__(self, part: str, expected: str, got: str, why: str) -> None:
        super().__init__(f"expected {expected}; got {got}: {why}")
        self.part = part
        self.expected = expected
        self.got = got
        self.why = why

    @property
    def message(self) -> str:
        """The labs' three lines."""
        return (f"expected: {self.expected}\n"
                f"got:      {self.got}\nwhy:      {self.why}")


def word_result(part: str, value: object, failure: str) -> int:
    """What ``part`` returned for eax, checked: an int 0..2^32-1.
    ``failure`` names the value that says the call failed."""
    if type(value) is int and 0 <= value <= WORD_MAX:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= WORD_MAX:
        return int(value)
    raise PartError(part, f"{part} to return an int 0..2^32-1 (for the caller's eax)",
                    f"{part} returned {_shown(value)}", _word_why(value, failure))


def _shown(value: object) -> str:
    text = repr(value)
    text = text if len(text) <= 60 else text[:60] + "..."
    return text if value is None or type(value) is int else \
        f"{text} (a {type(value).__name__})"


def _word_why(value: object, failure: str) -> str:
    if value is None:
        return ("the kernel puts the result into the caller's eax; a path of your function "
                "ended without a return (Python then returns None)")
    if isinstance(value, bool):
        return f"eax holds a number, not True or False: return {failure} for a failure"
    if isinstance(value, int):
        return (f"eax is a 32-bit register, so the result must lie in 0..0xffffffff: "
                f"{value} does not fit (a failure is {failure})")
    return "the kernel puts the result into the caller's eax, a 32-bit register"


def check_break(heap_: Heap) -> None:
    """After a student's nbrk: the break it left is a 32-bit address."""
    brk = heap_.brk
    if type(brk) is not int or not 0 <= brk <= WORD_MAX:
        raise PartError("nbrk", "nbrk to leave heap.brk an address 0..2^32-1",
                        f"heap.brk = {_shown(brk)}",
                        "the break is where the heap ends: nbrk(0) returns it, and the "
                        "kernel shows it (pynova maps)")


def check_queue(part: str, ready: Sequence[object], before: Sequence[Ec],
                ecs: Sequence[Ec], made_from: int) -> None:
    """After a student's thr_create or thr_yield: the ready queue holds
    threads of this task (``ecs``), each once and alive, and every thread
    that was ready before (``ecs[made_from:]`` were made during the call)."""
    seen: set[int] = set()
    for position, ec in enumerate(ready):
        if not isinstance(ec, Ec) or not 0 <= ec.id < len(ecs) or ecs[ec.id] is not ec:
            raise PartError(part, f"{part} to leave only threads in the ready queue (the "
                            f"Ecs it held, and those new_thread made)",
                            f"ready[{position}] = {_shown(ec)}",
                            "the kernel runs ready[0] and takes the others in turn: each "
                            "entry must be a thread of this task")
        if id(ec) in seen:
            raise PartError(part, f"{part} to leave each thread once in the ready queue",
                            f"thread {ec.id} twice", "a thread that is in the circle twice "
                            "gets two turns a round, and when it ends only one is taken out")
        if ec.state is not EcState.READY:
            raise PartError(part, f"{part} to leave only live threads in the ready queue",
                            f"thread {ec.id}, which has ended (thr_exit)",
                            "the kernel took it out of the circle when it ended")
        seen.add(id(ec))
    lost = [ec for ec in before if id(ec) not in seen]
    if lost:
        new = [ec for ec in ecs[made_from:] if id(ec) in seen]
        if new:
            raise PartError(part, f"{part} to keep every ready thread in the ready queue",
                            f"thread {lost[0].id} is no longer in it, and a new thread "
                            f"{new[0].id} (eip={new[0].regs.eip:#x}, esp={new[0].regs.esp:#x})"
                            f" is", "a thread's registers are kept in its Ec: the thread "
                            "itself must move in the circle. A new one made at its eip and "
                            "esp does not keep its registers (ebx, esi, edi, ebp, eflags, the "
                            "FPU: all but eip and esp start from zero) nor its id")
        raise PartError(part, f"{part} to keep every ready thread in the ready queue",
                        f"thread {lost[0].id} is no longer in it",
                        "a thread left out of the circle never runs again; only thr_exit "
                        "ends a thread")
