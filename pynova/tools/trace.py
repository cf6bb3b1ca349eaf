"""``pynova run --trace=syscall,exception,map,sched``: strace-like event
lines on stderr, stamped with the number of executed user instructions.

Zero cost when off: nothing here is installed unless tracing was asked for.
System calls are traced by wrapping the CPU's system-call handler (the
Syscalls table stays untouched); the kernel calls ``slice`` and
``exception`` only when its ``tracer`` attribute is set; mappings are
found by diffing the page tables after the calls that can change them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from pynova.kernel import syscall as sc
from pynova.kernel.exceptions import MNEMONICS, Fault
from pynova.kernel.layout import PAGE_MASK
from pynova.kernel.ptab import PRESENT, RW, USER
from pynova.tools.maps import merge

if TYPE_CHECKING:
    from pynova.kernel.ec import Ec
    from pynova.kernel.kernel import Kernel, Outcome

EVENTS = ("syscall", "exception", "map", "sched")
#: Arguments each call shows (esi, edi), by number.
ARGS = {sc.SYS_DUMP: 2, sc.SYS_PRINT: 2, sc.SYS_SUM: 2, sc.SYS_NBRK: 1,
        sc.SYS_THR_CREATE: 2, sc.SYS_THR_YIELD: 0, sc.SYS_EXIT: 1, sc.SYS_THR_EXIT: 0,
        sc.SYS_THR_SELF: 0}
#: Calls that never change the address space (no page-table diff after them).
NO_MAP = {sc.SYS_DUMP, sc.SYS_PRINT, sc.SYS_SUM, sc.SYS_THR_YIELD, sc.SYS_EXIT,
          sc.SYS_THR_EXIT, sc.SYS_THR_SELF}
#: Calls that stop the CPU and do not return a value.
NO_RETURN = {sc.SYS_EXIT, sc.SYS_THR_EXIT}


def parse_events(text: str) -> set[str]:
    """'syscall,map' or 'all' -> the set of events; ValueError when unknown."""
    names = {n.strip() for n in text.split(",") if n.strip()}
    if names == {"all"}:
        return set(EVENTS)
    unknown = names - set(EVENTS)
    if unknown or not names:
        raise ValueError(f"--trace: unknown event {', '.join(sorted(unknown)) or '(none)'} "
                         f"(choose from {', '.join(EVENTS)}, or all)")
    return names


class Tracer:
    """Writes one line per event of one kernel to ``stream``."""

    def __init__(self, kernel: Kernel, events: set[str], stream: TextIO) -> None:
        self.kernel = kernel
        self.events = events
        self.stream = stream
        self._pages: dict[int, tuple[int, int]] = {}
        self._last_ec: int | None = None
        self._known_ecs = 0

    # ------------------------------------------------------------ setup
    def attach(self) -> None:
        """Start tracing: count instructions, hook the kernel."""
        k = self.kernel
        k.cpu.set_counting(True)
        k.tracer = self
        self._known_ecs = len(k.ecs)
        if "syscall" in self.events or "map" in self.events:
            k.cpu.syscall_handler = self._traced_syscall(k.cpu.syscall_handler)
        if "map" in self.events:
            self._diff_maps()

    def emit(self, text: str) -> None:
        self.stream.write(f"[{self.kernel.cpu.instructions:9d}] {text}\n")
        self.stream.flush()

    # ---------------------------------------------------------- syscalls
    def _traced_syscall(self, inner):  # type: ignore[no-untyped-def]
        def traced(nr: int, esi: int, edi: int, ecx: int, edx: int, eip: int) -> int | None:
            if "syscall" in self.events and nr in NO_RETURN:
                self.emit(f"{call_text(nr, esi, edi)} = ?")
            result = inner(nr, esi, edi, ecx, edx, eip)
            if "syscall" in self.events and nr not in NO_RETURN:
                eax = result if result is not None else self.kernel.cpu.read_reg("eax")
                self.emit(f"{call_text(nr, esi, edi)} = {eax:#x}")
            if "map" in self.events and nr not in NO_MAP:
                self._diff_maps()
            if "sched" in self.events and len(self.kernel.ecs) != self._known_ecs:
                self._new_threads()
            return result
        return traced

    # -------------------------------------------------------------- maps
    def _diff_maps(self) -> None:
        pd = self.kernel.pd
        if pd is None:
            return
        now = {virt: (pte & PAGE_MASK, pte & (PRESENT | RW | USER))  # A/D are not mappings
               for virt, pte in pd.ptab.user_mappings()}
        gone = {v: e for v, e in self._pages.items() if v not in now}
        added = {v: e for v, e in now.items() if self._pages.get(v) != e}
        for r in merge(gone):
            self.emit(f"unmap {r.virt:#010x}-{r.end:#010x}")
        for r in merge(added):
            self.emit(f"map   {r.virt:#010x}-{r.end:#010x} -> {r.phys:#010x} "
                      f"[{r.flag_text}]")
        self._pages = now

    # ------------------------------------------------------- kernel hooks
    def slice(self, ec: Ec) -> None:
        """The kernel is about to run ``ec`` (called once per time slice)."""
        if "sched" not in self.events:
            return
        if len(self.kernel.ecs) != self._known_ecs:
            self._new_threads()
        if ec.id != self._last_ec:
            ready = ", ".join(str(e.id) for e in self.kernel.ready)
            self.emit(f"sched: run ec {ec.id} at eip {ec.regs.eip:#x} (ready: {ready})")
            self._last_ec = ec.id

    def _new_threads(self) -> None:
        for ec in self.kernel.ecs[self._known_ecs:]:
            self.emit(f"sched: new ec {ec.id} eip {ec.regs.eip:#x} esp {ec.regs.esp:#x}")
        self._known_ecs = len(self.kernel.ecs)

    def exception(self, fault: Fault) -> None:
        if "exception" not in self.events:
            return
        tag = MNEMONICS.get(fault.vector, str(fault.vector))
        cr2 = f" cr2={fault.cr2:#x}" if fault.vector == 14 else ""
        self.emit(f"--- #{tag} {fault.name} ec {fault.ec} eip={fault.eip:#x}{cr2} "
                  f"error_code={fault.error_code:#x} ---")

    def finish(self, outcome: Outcome) -> None:
        self.emit(f"+++ {outcome.reason}: {outcome.message or outcome.reason} "
                  f"(status {outcome.status}) +++")


def call_text(nr: int, esi: int, edi: int) -> str:
    name = sc.NAMES.get(nr)
    if name is None:
        return f"sys_{nr}({esi:#x}, {edi:#x})"
    args = [f"{esi:#x}", f"{edi}" if nr == sc.SYS_PRINT else f"{edi:#x}"][:ARGS.get(nr, 2)]
    return f"sys_{name}({', '.join(args)})"

