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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from pynova.kernel import heap, root_invoke, threads
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
