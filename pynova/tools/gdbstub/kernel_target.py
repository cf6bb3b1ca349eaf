"""The pynova kernel as a gdb :class:`~pynova.tools.gdbstub.target.Target`.

Thread ids: gdb's thread ``n`` is the kernel's Ec ``n - 1`` (gdb ids must
be positive; Ec ids start at 0). Memory is the task's user address space,
read and written through its page tables with user rights (a debugger may
patch read-only pages, not supervisor ones).

Faults: the kernel ends a task at an unhandled exception. The stub reports
the fault as a stop with its signal (``T0b`` for a page fault) so that gdb
shows the faulting instruction and registers; whatever gdb does next
(``continue``, ``signal 0``, ``step``) ends in ``X<signal>``, as it would
for a Unix process without a handler for the signal.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pynova.kernel import Kernel, Outcome
from pynova.kernel.ec import Ec, EcState
from pynova.kernel.exceptions import Fault
from pynova.kernel.layout import USER_END
from pynova.kernel.limits import TimeUp
from pynova.kernel.pd import Pd, UserMemoryError
from pynova.machine.cpu import Trap, TrapKind
from pynova.tools.gdbstub.regs import REGISTER_NAMES, Registers
from pynova.tools.gdbstub.siginfo import (
    FPE_INTDIV,
    ILL_ILLOPN,
    SEGV_ACCERR,
    SEGV_MAPERR,
    SI_KERNEL,
    TRAP_BRKPT,
)
from pynova.tools.gdbstub.stop import Signal, StopReason, WatchKind
from pynova.tools.gdbstub.target import BreakKind, MemoryFault, TargetError

PAGE_SIZE = 4096
#: EFLAGS bits gdb may change: the status flags, DF, AC and ID. Not TF (a
#: trap flag would end the task with SIGTRAP), IF or IOPL (privilege).
WRITABLE_EFLAGS = 0x00240CD5
#: The kernel's exit status for a task that the debugger killed (128 + 9).
STATUS_KILLED = 137
#: Linux signal numbers (the kernel's) that differ from gdb's.
_GDB_SIGNAL = {7: Signal.SIGBUS}
PAGE_FAULT = 14
_SI_CODES = {0: FPE_INTDIV, 6: ILL_ILLOPN, 3: TRAP_BRKPT, 1: TRAP_BRKPT}
_WATCH = {
    BreakKind.WRITE_WATCH: WatchKind.WRITE,
    BreakKind.READ_WATCH: WatchKind.READ,
    BreakKind.ACCESS_WATCH: WatchKind.ACCESS,
}


def gdb_thread(ec: Ec) -> int:
    """gdb's id for an Ec."""
    return ec.id + 1


def fault_code(fault: Fault) -> int:
    """``si_code`` for the siginfo of a fault, as Linux would set it."""
    if fault.vector == PAGE_FAULT:
        return SEGV_ACCERR if fault.error_code & 1 else SEGV_MAPERR
    return _SI_CODES.get(fault.vector, SI_KERNEL)


def gdb_signal(linux_signal: int) -> int:
    """The kernel reports Linux signal numbers; the protocol wants gdb's."""
    return int(_GDB_SIGNAL.get(linux_signal, linux_signal))


@dataclass
class _Run:
    """The state one debugging session keeps about the task."""

    breakpoints: set[tuple[BreakKind, int]] = field(default_factory=set)
    watchpoints: dict[int, tuple[BreakKind, int, list[tuple[int, int]]]] = field(
        default_factory=dict)
    fatal_signal: int | None = None
    running: bool = False


class KernelTarget:
    """Debugs the task of one booted :class:`Kernel` (after ``root_invoke``)."""

    def __init__(self, kernel: Kernel) -> None:
        self._kernel = kernel
        self._cpu = kernel.cpu
        self._run = _Run()
        self._interrupt = threading.Event()

    # -- threads and registers -------------------------------------------------

    def threads(self) -> list[int]:
        return [gdb_thread(ec) for ec in self._live_ecs()]

    def _ended_for_gdb(self) -> bool:
        """After a fault gdb still sees the task until it resumes it."""
        return self._kernel.outcome is not None and self._run.fatal_signal is None

    def _live_ecs(self) -> list[Ec]:
        if self._ended_for_gdb():
            return []
        return [ec for ec in self._kernel.ecs if ec.state is EcState.READY]

    def _ec(self, thread: int) -> Ec:
        for ec in self._live_ecs():
            if gdb_thread(ec) == thread:
                return ec
        raise TargetError(f"no thread {thread}")

    def read_registers(self, thread: int) -> Registers:
        regs = self._ec(thread).regs
        return {name: getattr(regs, name) for name in REGISTER_NAMES}

    def write_registers(self, thread: int, regs: Registers) -> None:
        """Set eax..edi, eip and the writable eflags bits.

        Segment registers are ignored: the kernel enters user mode with its
        fixed user selectors.
        """
        saved = self._ec(thread).regs
        for name, value in regs.items():
            if name == "eflags":
                kept = saved.eflags & ~WRITABLE_EFLAGS
                saved.eflags = kept | (value & WRITABLE_EFLAGS)
            elif name in REGISTER_NAMES[:9]:
                setattr(saved, name, value & 0xFFFFFFFF)

    # -- memory -----------------------------------------------------------------

    def read_memory(self, address: int, length: int) -> bytes:
        out = bytearray()
        pd = self._pd()
        while len(out) < length:
            at = address + len(out)
            chunk = min(length - len(out), PAGE_SIZE - at % PAGE_SIZE)
            try:
                out += pd.read_user(at, chunk)
            except UserMemoryError:
                break
        if length and not out:
            raise MemoryFault(f"cannot read {address:#x}")
        return bytes(out)

    def write_memory(self, address: int, data: bytes) -> None:
        pd = self._pd()
        last = address + max(len(data), 1) - 1
        pages = range(address - address % PAGE_SIZE, last + 1, PAGE_SIZE)
        if last >= 1 << 32 or not all(pd.readable(page) for page in pages):
            raise MemoryFault(f"cannot write {address:#x}+{len(data)}")
        pd.write_user(address, data, ignore_rw=True)
        self._cpu.invalidate_code(address, len(data))

    def _pd(self) -> Pd:
        if self._kernel.pd is None or self._ended_for_gdb():
            raise TargetError("the program has ended")
        return self._kernel.pd

    # -- breakpoints and watchpoints ----------------------------------------------

    def insert_breakpoint(self, kind: BreakKind, address: int, length: int) -> bool:
        if address + max(length, 1) > USER_END:
            # The kernel's code and data are not the program's: a breakpoint
            # on the iret stub would stop every return to user mode, a
            # watchpoint on the kernel stack would report the kernel's own
            # accesses. Refused as memory reads there are.
            raise MemoryFault(f"{address:#x} is kernel memory")
        if kind in _WATCH:
            return self._insert_watchpoint(kind, address, length)
        self._run.breakpoints.add((kind, address))
        self._cpu.add_breakpoint(address)
        return True

    def remove_breakpoint(self, kind: BreakKind, address: int, length: int) -> bool:
        if kind in _WATCH:
            return self._remove_watchpoint(kind, address, length)
        self._run.breakpoints.discard((kind, address))
        if not any(addr == address for _, addr in self._run.breakpoints):
            self._cpu.remove_breakpoint(address)
        return True

    def _insert_watchpoint(self, kind: BreakKind, address: int, length: int) -> bool:
        """A data breakpoint on the physical bytes behind [address, address+length)
        (the CPU watches physical memory); refused (so gdb single-steps and
        compares instead) for unmapped memory or a CPU without them."""
        add = getattr(self._cpu, "add_watchpoint", None)
        pieces = self._physical_pieces(address, length)
        if add is None or pieces is None:
            return False
        for phys, size in pieces:
            add(phys, size, _WATCH[kind].value, address)
        self._run.watchpoints[address] = (kind, length, pieces)
        return True

    def _remove_watchpoint(self, kind: BreakKind, address: int, length: int) -> bool:
        remove = getattr(self._cpu, "remove_watchpoint", None)
        entry = self._run.watchpoints.pop(address, None)
        if remove is None or entry is None:
            return remove is not None
        for phys, size in entry[2]:
            remove(phys, size, _WATCH[kind].value)
        return True

    def _physical_pieces(self, address: int, length: int) -> list[tuple[int, int]] | None:
        pd = self._kernel.pd
        if pd is None or length <= 0:
            return None
        pieces = []
        end = address + length
        while address < end:
            size = min(end, (address | 0xFFF) + 1) - address
            phys = pd.ptab.walk(address).phys
            if phys is None:
                return None
            pieces.append((phys, size))
            address += size
        return pieces

    def _remove_all(self) -> None:
        for address in {addr for _, addr in self._run.breakpoints}:
            self._cpu.remove_breakpoint(address)
        for address, (kind, length, _pieces) in list(self._run.watchpoints.items()):
            self._remove_watchpoint(kind, address, length)
        self._run.breakpoints.clear()

    # -- execution -----------------------------------------------------------------

    def resume(self, step: bool, thread: int | None, signal: int = 0) -> StopReason:
        if self._run.fatal_signal is not None:
            return self._die(self._run.fatal_signal)
        if step and thread is not None:
            self._put_first(self._ec(thread))
        self._run.running = True
        try:
            return self._step() if step else self._continue()
        finally:
            self._run.running = False

    def _put_first(self, ec: Ec) -> None:
        ready = self._kernel.ready
        ready.rotate(-ready.index(ec))

    def _step(self) -> StopReason:
        ec = self._kernel.ready[0]
        trap = self._slice(ec, single_step=True)
        return self._stopped(ec, trap) or StopReason.signal(Signal.SIGTRAP, gdb_thread(ec))

    def _continue(self) -> StopReason:
        while True:
            if self._interrupt.is_set() or not self._kernel.ready:
                break
            ec = self._kernel.ready[0]
            stop = self._stopped(ec, self._slice(ec, single_step=False))
            if stop is not None:
                return stop
        return self._stopped(self._kernel.current, None) or self._interrupted()

    def _slice(self, ec: Ec, *, single_step: bool) -> Trap | None:
        """One kernel slice of ``ec`` (the head of the ready queue)."""
        try:
            return self._kernel.run_slice(single_step=single_step)
        except TimeUp:  # in a lab's part
            self._kernel.time_up()
            return None

    def _stopped(self, ec: Ec, trap: Trap | None) -> StopReason | None:
        """The stop to report after one slice, or None to go on running."""
        outcome = self._kernel.outcome
        if outcome is not None:
            return self._ended(outcome)
        if trap is None:
            return None
        tid = gdb_thread(ec)
        if trap.kind is TrapKind.INTERRUPTED:
            return self._interrupted(tid)
        if trap.kind is TrapKind.BREAKPOINT:
            hardware = (BreakKind.SOFTWARE, trap.eip) not in self._run.breakpoints
            return StopReason.signal(Signal.SIGTRAP, tid, swbreak=not hardware, hwbreak=hardware)
        if trap.kind is TrapKind.WATCHPOINT:
            kind = self._run.watchpoints.get(trap.address, (BreakKind.ACCESS_WATCH, 0))[0]
            return StopReason.signal(Signal.SIGTRAP, tid, watch=(_WATCH[kind], trap.address))
        return StopReason.signal(Signal.SIGTRAP, tid)  # a single step, a hlt

    def _interrupted(self, thread: int | None = None) -> StopReason:
        self._interrupt.clear()
        if thread is None:
            thread = gdb_thread(self._kernel.ready[0]) if self._kernel.ready else None
        return StopReason.signal(Signal.SIGINT, thread)

    def _ended(self, outcome: Outcome) -> StopReason:
        if outcome.fault is None or outcome.reason == "kernel":
            # A ring-0 exception (the kernel's iret) is the kernel's end,
            # not a signal of the task: gdb sees it exit with status 134.
            return StopReason.exited(outcome.status)
        fault = outcome.fault
        self._run.fatal_signal = gdb_signal(fault.signal)
        return StopReason.signal(
            self._run.fatal_signal,
            fault.ec + 1,
            fault_address=fault.cr2 if fault.vector == PAGE_FAULT else fault.eip,
            fault_code=fault_code(fault),
        )

    def _die(self, signal: int) -> StopReason:
        self._run.fatal_signal = None
        return StopReason.killed(signal)

    def interrupt(self) -> None:
        """Ask the running task to stop; safe from any thread. The CPU keeps
        the request until its next run reaches user mode."""
        self._interrupt.set()
        self._kernel.request_stop()

    def time_left(self) -> float | None:
        return self._kernel.limits.time_left()

    def time_up(self) -> None:
        self._remove_all()
        self._kernel.time_up()

    def kill(self) -> None:
        self._remove_all()
        self._kernel.finish(Outcome(STATUS_KILLED, "killed", "killed by the debugger"))

    def detach(self) -> None:
        self._remove_all()
        self._interrupt.clear()
