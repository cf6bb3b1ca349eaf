"""The CPU seam: what the kernel may ask of a processor, whatever emulates it.

The kernel drives the CPU with ``run`` and gets back a ``Trap`` that says why
the CPU stopped running the user context. System calls do not stop the CPU:
the backend calls the kernel's ``SyscallHandler`` in the middle of ``run`` and
resumes the user right after ``sysenter`` (with ``esp = ecx``), as a
``sysenter``/``sysexit`` pair does.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import NamedTuple, Protocol

#: Names of the user register file, in the order of Intel's PUSHAD
#: (SDM vol. 2B, "PUSHA/PUSHAD") followed by eip and eflags.
GPR_NAMES = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")
SEGMENT_NAMES = ("cs", "ss", "ds", "es", "fs", "gs")


REG_NAMES = GPR_NAMES + ("eip", "eflags") + SEGMENT_NAMES


class Regs:
    """A user register file: positional in REG_NAMES order, or by name.

    (A plain class with slots rather than a dataclass: the machine layer is on
    the path of every boot, and importing dataclasses costs more than a boot.)
    """

    __slots__ = REG_NAMES
    eax: int
    ecx: int
    edx: int
    ebx: int
    esp: int
    ebp: int
    esi: int
    edi: int
    eip: int
    eflags: int
    cs: int
    ss: int
    ds: int
    es: int
    fs: int
    gs: int

    def __init__(self, eax: int = 0, ecx: int = 0, edx: int = 0, ebx: int = 0,
                 esp: int = 0, ebp: int = 0, esi: int = 0, edi: int = 0, eip: int = 0,
                 eflags: int = 0x202, cs: int = 0, ss: int = 0, ds: int = 0, es: int = 0,
                 fs: int = 0, gs: int = 0) -> None:
        # Spelled out: this runs on every return from user mode.
        self.eax, self.ecx, self.edx, self.ebx = eax, ecx, edx, ebx
        self.esp, self.ebp, self.esi, self.edi = esp, ebp, esi, edi
        self.eip, self.eflags = eip, eflags
        self.cs, self.ss, self.ds, self.es, self.fs, self.gs = cs, ss, ds, es, fs, gs

    def as_tuple(self) -> tuple[int, ...]:
        return tuple(getattr(self, name) for name in REG_NAMES)

    def copy(self) -> Regs:
        return Regs(*self.as_tuple())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Regs) and self.as_tuple() == other.as_tuple()

    def __repr__(self) -> str:
        return "Regs(" + ", ".join(f"{n}={getattr(self, n):#x}" for n in REG_NAMES) + ")"


class TrapKind(enum.Enum):
    EXCEPTION = "exception"      # a fault, trap or abort raised by the CPU
    SYSCALL_STOP = "syscall"     # the system-call handler asked the CPU to stop
    BUDGET = "budget"            # the instruction budget of this run is spent
    TIMEOUT = "timeout"          # the wall-clock budget of this run is spent
    BREAKPOINT = "breakpoint"    # a debugger breakpoint address was reached
    WATCHPOINT = "watchpoint"    # a debugger watchpoint was hit
    INTERRUPTED = "interrupted"  # someone called request_stop()
    HALT = "halt"                # the CPU executed hlt in ring 0


class Trap(NamedTuple):
    """Why ``Cpu.run`` returned. ``eip`` is where the user context stands now:
    the faulting instruction for faults, the next one for traps."""

    kind: TrapKind
    eip: int
    vector: int | None = None
    error_code: int = 0
    cr2: int = 0
    address: int = 0  # the data address of a watchpoint hit


#: A system-call handler gets (number in al, esi, edi, ecx, edx, eip of the
#: sysenter) and returns the new eax, or None to leave eax unchanged.
SyscallHandler = Callable[[int, int, int, int, int, int], "int | None"]


class Cpu(Protocol):
    """What the kernel needs from a processor (one core, IA-32 with paging)."""

    syscall_handler: SyscallHandler | None
    #: Called when user code touches the x87/SSE registers while CR0.TS is
    #: set (enter_kernel(fpu_trap=True)); the instruction then runs again.
    fpu_handler: Callable[[], None] | None
    #: Whether the x87/SSE switch may be left to #NM (fpu_handler): a run
    #: that stops for it goes on with exactly the budget it had left.
    lazy_fpu: bool
    #: Reads user code at a virtual address (the kernel provides it, since
    #: only it knows the address space); used to count instructions.
    fetch_code: Callable[[int, int], bytes] | None
    version: str

    @property
    def instructions(self) -> int:
        """Executed user instructions, when counting is on."""
        ...

    @property
    def counting(self) -> bool: ...

    def read_regs(self) -> Regs: ...
    def write_regs(self, regs: Regs, esp: int) -> None: ...
    def switch_fpu(self, state: bytes | None) -> bytes: ...
    def read_reg(self, name: str) -> int: ...
    def write_reg(self, name: str, value: int) -> None: ...
    def write_cr(self, n: int, value: int) -> None: ...
    def read_cr(self, n: int) -> int: ...
    def write_msr(self, msr: int, value: int) -> None: ...
    def read_msr(self, msr: int) -> int: ...
    def read_table_register(self, name: str) -> tuple[int, int]: ...
    def load_gdtr(self, base: int, limit: int) -> None: ...
    def load_idtr(self, base: int, limit: int) -> None: ...
    def load_tr(self, selector: int, base: int, limit: int, access: int) -> None: ...
    def load_segment(self, name: str, selector: int) -> None: ...
    def save_kernel_state(self) -> None: ...
    def enter_kernel(self, fpu_trap: bool = False) -> None: ...
    def run(self, eip: int, max_insns: int | None = None, *, timeout: float | None = None,
            resume_eip: int | None = None) -> Trap: ...
    def stop_after_syscall(self, resume_eip: int | None = None) -> None: ...
    def request_stop(self) -> None: ...
    def invalidate_tlb(self) -> None: ...
    def invalidate_code(self, address: int, size: int) -> None: ...
    def set_counting(self, on: bool) -> None: ...
    def add_breakpoint(self, address: int) -> None: ...
    def remove_breakpoint(self, address: int) -> None: ...
    def add_watchpoint(self, phys: int, length: int, kind: str, report_as: int) -> None: ...
    def remove_watchpoint(self, phys: int, length: int, kind: str) -> None: ...
    def close(self) -> None: ...
