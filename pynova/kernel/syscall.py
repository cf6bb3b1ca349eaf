"""System calls: the ABI table of DESIGN.md and docs/ABI.md.

``Syscalls.dispatch`` runs inside the CPU's sysenter hook for every call, so
it stays short: a closure over the table, a list indexed by the number in
``al`` (no attribute look-ups, no bound method made per call). A handler
returns the new eax, or None to leave eax unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pynova.kernel.pd import UserMemoryError
from pynova.machine.cpu import SyscallHandler

if TYPE_CHECKING:
    from pynova.kernel.kernel import Kernel

SYS_DUMP, SYS_PRINT, SYS_SUM, SYS_NBRK, SYS_THR_CREATE, SYS_THR_YIELD = range(6)
SYS_EXIT, SYS_THR_EXIT, SYS_THR_SELF = 6, 8, 9
PRINT_MAX = 1 << 20
ERROR = 0xFFFFFFFF

Handler = Callable[[int, int, int, int], "int | None"]  # (esi, edi, ecx, edx)

NAMES = {SYS_DUMP: "dump", SYS_PRINT: "print", SYS_SUM: "sum", SYS_NBRK: "nbrk",
         SYS_THR_CREATE: "thr_create", SYS_THR_YIELD: "thr_yield", SYS_EXIT: "exit",
         SYS_THR_EXIT: "thr_exit", SYS_THR_SELF: "thr_self"}


class Syscalls:
    """The system-call table of one kernel."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.console = kernel.console
        table: list[Handler | None] = [None] * 256
        table[SYS_DUMP] = self.sys_dump
        table[SYS_PRINT] = self.sys_print
        table[SYS_SUM] = self.sys_sum
        table[SYS_NBRK] = self.sys_nbrk
        table[SYS_THR_CREATE] = self.sys_thr_create
        table[SYS_THR_YIELD] = self.sys_thr_yield
        table[SYS_EXIT] = self.sys_exit
        table[SYS_THR_EXIT] = self.sys_thr_exit
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

    def unknown(self, nr: int) -> None:
        self.console.line(f"syscall {nr} - unknown")

    # ------------------------------------------------------------ calls
    def sys_dump(self, esi: int, edi: int, ecx: int, edx: int) -> None:
        ec = self.kernel.current
        self.console.line(f"EC:{self.kernel.ec_address(ec):#x} SYS_DUMP : {esi:#010x}, {edi:#010x}")

    def sys_print(self, esi: int, edi: int, ecx: int, edx: int) -> int | None:
        if edi > PRINT_MAX:
            self.console.line(f"print: bad buffer {esi:#x}+{edi:#x} (longer than 1 MiB)")
            return ERROR
        try:
            data = self.kernel.current.pd.read_user(esi, edi)
        except UserMemoryError as err:
            self.console.line(f"print: bad buffer {esi:#x}+{edi:#x} ({err})")
            return ERROR
        self.console.write_bytes(data)
        return None

    @staticmethod
    def sys_sum(esi: int, edi: int, ecx: int, edx: int) -> int:
        return (esi + edi) & 0xFFFFFFFF

    def sys_nbrk(self, esi: int, edi: int, ecx: int, edx: int) -> int:
        return self.kernel.nbrk(esi)

    def sys_thr_create(self, esi: int, edi: int, ecx: int, edx: int) -> int:
        return self.kernel.thr_create(esi, edi, edx)

    def sys_thr_yield(self, esi: int, edi: int, ecx: int, edx: int) -> None:
        self.kernel.after_syscall("yield", edx)

    def sys_exit(self, esi: int, edi: int, ecx: int, edx: int) -> None:
        self.kernel.after_syscall("exit", edx, esi & 0xFF)

    def sys_thr_exit(self, esi: int, edi: int, ecx: int, edx: int) -> None:
        self.kernel.after_syscall("thr_exit", edx)

    def sys_thr_self(self, esi: int, edi: int, ecx: int, edx: int) -> int:
        return self.kernel.current.id
