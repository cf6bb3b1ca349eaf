"""Exceptions: their names and how the kernel reports them (in user mode,
and in ring 0, where only the kernel's iret can fault).

Names and vectors from Intel SDM vol. 3A, 6.3.1, Table 6-1. The report's
first line has the form of the seed's slide "Understanding kernel
exceptions"; its last line is what the reference kernel prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from pynova.machine.cpu import Regs

VECTOR_NAMES = {
    0: "Divide Error", 1: "Debug", 2: "NMI Interrupt", 3: "Breakpoint", 4: "Overflow",
    5: "BOUND Range Exceeded", 6: "Invalid Opcode", 7: "Device Not Available",
    8: "Double Fault", 9: "Coprocessor Segment Overrun", 10: "Invalid TSS",
    11: "Segment Not Present", 12: "Stack-Segment Fault", 13: "General Protection",
    14: "Page Fault", 16: "x87 FPU Floating-Point Error", 17: "Alignment Check",
    18: "Machine Check", 19: "SIMD Floating-Point Exception", 20: "Virtualization Exception",
    21: "Control Protection Exception",
}
MNEMONICS = {0: "DE", 1: "DB", 3: "BP", 4: "OF", 5: "BR", 6: "UD", 7: "NM", 8: "DF",
             10: "TS", 11: "NP", 12: "SS", 13: "GP", 14: "PF", 16: "MF", 17: "AC",
             18: "MC", 19: "XM"}

SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV = 4, 5, 7, 8, 11
_SIGNALS = {0: SIGFPE, 4: SIGFPE, 16: SIGFPE, 19: SIGFPE, 6: SIGILL, 1: SIGTRAP,
            3: SIGTRAP, 5: SIGSEGV, 11: SIGSEGV, 12: SIGSEGV, 13: SIGSEGV, 14: SIGSEGV}

# Page-fault error code bits (SDM vol. 3A, 4.7, Figure 4-12).
PF_P, PF_W, PF_U, PF_RSVD, PF_I = 1, 2, 4, 8, 16


def vector_name(vector: int) -> str:
    return VECTOR_NAMES.get(vector, f"Exception {vector}")


def signal_of(vector: int) -> int:
    """The POSIX signal a Unix kernel would send for this exception."""
    return _SIGNALS.get(vector, SIGBUS)


class Fault(NamedTuple):
    """An exception that ended a task, as the autograder API reports it."""

    vector: int
    eip: int
    cr2: int
    error_code: int
    ec: int

    @property
    def name(self) -> str:
        return vector_name(self.vector)

    @property
    def signal(self) -> int:
        return signal_of(self.vector)


def report_lines(fault: Fault, regs: Regs, threads: int) -> list[str]:
    """The kernel's report of an unhandled user exception."""
    who = f" in EC {fault.ec}" if threads > 1 else ""
    lines = [
        f"Ec::handle_exc {fault.name} (eip={fault.eip:#x} cr2={fault.cr2:#x}){who}",
        f"eax={regs.eax:#x} ebx={regs.ebx:#x} ecx={regs.ecx:#x} edx={regs.edx:#x}",
        f"esi={regs.esi:#x} edi={regs.edi:#x} ebp={regs.ebp:#x} esp={regs.esp:#x}",
    ]
    if fault.vector == 14:
        lines.append(f"User PF (EIP={fault.eip:#x} CR2={fault.cr2:#x})")
    else:
        lines.append(f"User EXC {fault.vector:#x} (EIP={fault.eip:#x} CR2={fault.cr2:#x})")
    return lines


def kernel_report_lines(fault: Fault, regs: Regs, frame: Sequence[int],
                        frame_at: int) -> list[str]:
    """The kernel's report of an exception in ring 0 (its iret refused the
    frame): the seed's "unhandled kernel exception", with the frame the
    CPU popped."""
    eip, cs, eflags, esp, ss = frame
    return [
        f"Ec::handle_exc {fault.name} (eip={fault.eip:#x} cr2={fault.cr2:#x}) in ring 0, "
        f"error code {fault.error_code:#x}",
        f"eax={regs.eax:#x} ebx={regs.ebx:#x} ecx={regs.ecx:#x} edx={regs.edx:#x}",
        f"esi={regs.esi:#x} edi={regs.edi:#x} ebp={regs.ebp:#x} esp={frame_at:#x}",
        f"iret frame at {frame_at:#x}: eip={eip:#x} cs={cs:#x} eflags={eflags:#x} "
        f"esp={esp:#x} ss={ss:#x}",
        "unhandled kernel exception",
    ]
