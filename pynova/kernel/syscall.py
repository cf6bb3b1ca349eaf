"""System calls: the ABI table of DESIGN.md and docs/ABI.md.

``Syscalls.dispatch`` runs inside the CPU's sysenter hook for every call, so
it stays short: a closure over the table, a list indexed by the number in
``al`` (no attribute look-ups, no bound method made per call). A handler
returns the new eax, or None to leave eax unchanged.

A call that needs the CPU stopped (exit, yield, thr_exit, and a thr_create
that gives the running thread its first quantum) returns what the kernel
must do then, an ``Action``: the table asks the CPU to stop after the call
and keeps the action for the kernel (``take_action``). This module knows
the kernel's scheduler and parts, never the kernel itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from pynova.kernel.ec import Ec, ec_address
from pynova.kernel.parts import Parts, check_break, check_queue, word_result
from pynova.kernel.pd import UserMemoryError
from pynova.kernel.sched import RoundRobin, Threads
from pynova.machine.console import Console
from pynova.machine.cpu import SyscallHandler

SYS_DUMP, SYS_PRINT, SYS_SUM, SYS_NBRK, SYS_THR_CREATE, SYS_THR_YIELD = range(6)
SYS_EXIT, SYS_THR_EXIT, SYS_THR_SELF = 6, 8, 9
PRINT_MAX = 1 << 20
ERROR = 0xFFFFFFFF

Handler = Callable[[int, int, int, int], "int | None"]  # (esi, edi, ecx, edx)

NAMES = {SYS_DUMP: "dump", SYS_PRINT: "print", SYS_SUM: "sum", SYS_NBRK: "nbrk",
         SYS_THR_CREATE: "thr_create", SYS_THR_YIELD: "thr_yield", SYS_EXIT: "exit",
         SYS_THR_EXIT: "thr_exit", SYS_THR_SELF: "thr_self"}


class Action(NamedTuple):
    """What the kernel must do once the CPU has stopped after a call."""

    kind: str          # exit | yield | thr_exit | requantum (nothing more: the stop was it)
    status: int = 0    # exit's status


YIELD = Action("yield")
THR_EXIT = Action("thr_exit")
REQUANTUM = Action("requantum")


class Syscalls:
    """The system-call table of one kernel."""

    def __init__(self, console: Console, sched: RoundRobin, parts: Parts, threads: Threads,
                 stop: Callable[[int], None], ecs: list[Ec] | None = None) -> None:
        self.console = console
        self.sched = sched
        self.parts = parts
        self.threads = threads
        #: Every Ec of the task by id, to check what a student's thread part
        #: leaves in the queue (parts.check_queue); pynova's own are trusted.
        self.ecs: list[Ec] = ecs if ecs is not None else []
        self._trust_nbrk = parts.own("nbrk")
        self._trust_create = parts.own("thr_create")
        self._stop = stop  # the CPU stops once the call returns; resume at the eip given
        self._action: Action | None = None
        table: list[Handler | None] = [None] * 256
        table[SYS_DUMP] = self.sys_dump
        table[SYS_PRINT] = self.sys_print
        table[SYS_SUM] = self.sys_sum
        table[SYS_NBRK] = self.sys_nbrk
        table[SYS_THR_CREATE] = self.sys_thr_create
        table[SYS_THR_YIELD] = self._stopping(self.sys_thr_yield)
        table[SYS_EXIT] = self._stopping(self.sys_exit)
        table[SYS_THR_EXIT] = self._stopping(self.sys_thr_exit)
        table[SYS_THR_SELF] = self.sys_thr_self
        self.table = table
        #: What the CPU's sysenter hook calls (a SyscallHandler).
        self.dispatch: SyscallHandler = self._dispatcher()

    def _dispatcher(self) -> SyscallHandler:
        table, unknown = self.table, self.unknown

        def dispatch(nr: int, esi: int, edi: int, ecx: int, edx: int,
                     eip: int) -> int | None:
            handler = table[nr]
            if handler is None:
                return unknown(nr)
            return handler(esi, edi, ecx, edx)
        return dispatch

    def __call__(self, nr: int, esi: int, edi: int, ecx: int, edx: int, eip: int) -> int | None:
        return self.dispatch(nr, esi, edi, ecx, edx, eip)

    def _stopping(self, call: Callable[[int, int, int, int], Action]) -> Handler:
        """A handler for a call that returns an Action: eax stays, the CPU
        stops after it and resumes at edx, where the sysexit would."""
        def handler(esi: int, edi: int, ecx: int, edx: int) -> None:
            self.stop_for(call(esi, edi, ecx, edx), edx)
        return handler

    def stop_for(self, action: Action, resume_eip: int) -> None:
        self._action = action
        self._stop(resume_eip)

    def take_action(self) -> Action | None:
        """The kernel, once the CPU has stopped: what the last call asked for."""
        action, self._action = self._action, None
        return action

    def unknown(self, nr: int) -> None:
        self.console.line(f"syscall {nr} - unknown")

    # ------------------------------------------------------------ calls
    def sys_dump(self, esi: int, edi: int, ecx: int, edx: int) -> None:
        ec = self.sched.current
        self.console.line(f"EC:{ec_address(ec):#x} SYS_DUMP : {esi:#010x}, {edi:#010x}")

    def sys_print(self, esi: int, edi: int, ecx: int, edx: int) -> int | None:
        if edi > PRINT_MAX:
            self.console.line(f"print: bad buffer {esi:#x}+{edi:#x} (longer than 1 MiB)")
            return ERROR
        try:
            data = self.sched.current.pd.read_user(esi, edi)
        except UserMemoryError as err:
            self.console.line(f"print: bad buffer {esi:#x}+{edi:#x} ({err})")
            return ERROR
        self.console.write_bytes(data)
        return None

    @staticmethod
    def sys_sum(esi: int, edi: int, ecx: int, edx: int) -> int:
        return (esi + edi) & 0xFFFFFFFF

    def sys_nbrk(self, esi: int, edi: int, ecx: int, edx: int) -> int:
        heap = self.sched.current.pd.heap
        result = self.parts.nbrk(heap, esi)
        if self._trust_nbrk:
            return result
        check_break(heap)
        return word_result("nbrk", result, "0")

    def sys_thr_create(self, esi: int, edi: int, ecx: int, edx: int) -> int:
        was_sliced = self.sched.sliced()
        if self._trust_create:
            result = self.parts.thr_create(self.threads, esi, edi)
        else:
            before, made_from = list(self.sched.ready), len(self.ecs)
            result = word_result("thr_create", self.parts.thr_create(self.threads, esi, edi),
                                 "0xFFFFFFFF")
            check_queue("thr_create", self.sched.ready, before, self.ecs, made_from)
        if self.sched.sliced() and not was_sliced:
            # The running thread has no quantum yet: stop so that the next
            # slice gets one, or a creator that spins would starve the new one.
            self.stop_for(REQUANTUM, edx)
        return result

    @staticmethod
    def sys_thr_yield(esi: int, edi: int, ecx: int, edx: int) -> Action:
        return YIELD

    @staticmethod
    def sys_exit(esi: int, edi: int, ecx: int, edx: int) -> Action:
        return Action("exit", esi & 0xFF)

    @staticmethod
    def sys_thr_exit(esi: int, edi: int, ecx: int, edx: int) -> Action:
        return THR_EXIT

    def sys_thr_self(self, esi: int, edi: int, ecx: int, edx: int) -> int:
        return self.sched.current.id
