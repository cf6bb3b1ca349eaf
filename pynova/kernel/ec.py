"""Ec (NOVA's execution context): one thread of user execution.

The first one is made from the iret frame of ``root_invoke``
(root_invoke.py); thr_create makes the others.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pynova.kernel import layout
from pynova.machine.cpu import Regs

if TYPE_CHECKING:
    from pynova.kernel.pd import Pd


class EcState(enum.Enum):
    READY = "ready"
    DEAD = "dead"


class Ec:
    """A thread: its saved user registers and the address space it runs in."""

    def __init__(self, ec_id: int, pd: Pd, regs: Regs, stack_top: int = 0) -> None:
        self.id = ec_id
        self.pd = pd
        self.regs = regs
        self.state = EcState.READY
        self.stack_top = stack_top
        #: Like EFLAGS.RF (Intel SDM vol. 3B, 17.3.1.1): set when the Ec
        #: stopped at a breakpoint, so that resuming there does not break
        #: again at once.
        self.resume_flag = False
        #: The x87/SSE state while another Ec has the FPU (Cpu.switch_fpu's
        #: blob); None: the initial state (FNINIT, MXCSR 0x1F80).
        self.fpu: bytes | None = None

    def __repr__(self) -> str:
        return f"Ec({self.id}, {self.state.value}, eip={self.regs.eip:#x})"

    @classmethod
    def create(cls, ec_id: int, pd: Pd, eip: int, esp: int) -> Ec:
        """A thread that starts at ``eip`` with esp = ``esp`` in ring 3."""
        return cls.from_iret_frame(ec_id, pd, (eip, layout.SEL_USER_CODE, layout.USER_EFLAGS,
                                               esp, layout.SEL_USER_DATA))

    @classmethod
    def from_iret_frame(cls, ec_id: int, pd: Pd, frame: Sequence[int]) -> Ec:
        """A thread whose first iret pops ``frame`` = [eip, cs, eflags, esp,
        ss] as it is (a wrong one faults in the CPU, in ring 0)."""
        eip, cs, eflags, esp, ss = frame
        data = layout.SEL_USER_DATA
        regs = Regs(eip=eip, esp=esp, eflags=eflags, cs=cs, ss=ss, ds=data, es=data, fs=data,
                    gs=data)
        return cls(ec_id, pd, regs, stack_top=esp)

    def iret_frame(self) -> list[int]:
        """The five words iret pops (SDM vol. 3A, 6.12.1, Figure 6-4): the
        seed's [entry, SEL_USER_CODE, 0x200, 0x2000, SEL_USER_DATA] at first."""
        r = self.regs
        return [r.eip, r.cs, r.eflags, r.esp, r.ss]


def ec_address(ec: Ec) -> int:
    """A stable kernel-virtual name for an Ec (the reference prints one)."""
    return layout.kvirt(layout.KSTACK_PHYS) + 0x40 * ec.id
