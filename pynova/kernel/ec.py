"""Ec (NOVA's execution context): one thread of user execution, and
``root_invoke``, which makes the first one from the boot module (the seed's
assignment: parse the ELF headers, map the segments, iret to the entry)."""

from __future__ import annotations

import enum

from pynova.kernel import layout
from pynova.kernel.elf import PF_W, PF_X, PT_LOAD
from pynova.kernel.loader import Plan
from pynova.kernel.pd import Pd
from pynova.machine.cpu import Regs


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
        #: The x87/SSE state while another Ec has the FPU (Cpu.read_fpu's
        #: blob); None: the initial state (FNINIT, MXCSR 0x1F80).
        self.fpu: bytes | None = None

    def __repr__(self) -> str:
        return f"Ec({self.id}, {self.state.value}, eip={self.regs.eip:#x})"

    @classmethod
    def create(cls, ec_id: int, pd: Pd, eip: int, esp: int) -> Ec:
        regs = Regs(eip=eip, esp=esp, eflags=layout.USER_EFLAGS, cs=layout.SEL_USER_CODE,
                    ss=layout.SEL_USER_DATA, ds=layout.SEL_USER_DATA,
                    es=layout.SEL_USER_DATA, fs=layout.SEL_USER_DATA,
                    gs=layout.SEL_USER_DATA)
        return cls(ec_id, pd, regs, stack_top=esp)

    def iret_frame(self) -> list[int]:
        """The five words iret pops (SDM vol. 3A, 6.12.1, Figure 6-4): the
        seed's [entry, SEL_USER_CODE, 0x200, 0x2000, SEL_USER_DATA]."""
        r = self.regs
        return [r.eip, layout.SEL_USER_CODE, r.eflags, r.esp, layout.SEL_USER_DATA]


def segment_lines(plan: Plan, module_phys: int) -> list[str]:
    """The seed's step 1: each PT_LOAD's virt/phys (aligned down) and size
    (aligned up), plus the rights its pages get."""
    lines = []
    for ph in plan.phs:
        if ph.type != PT_LOAD or not ph.memsz:
            continue
        virt = layout.align_down(ph.vaddr)
        size = layout.align_up(ph.vaddr + ph.memsz) - virt
        phys = module_phys + layout.align_down(ph.offset)
        rights = "r" + ("w" if ph.flags & PF_W else "-") + ("x" if ph.flags & PF_X else "-")
        lines.append(f"  segment virt {virt:#010x} phys {phys:#010x} size {size:#x} {rights}")
    return lines + [stack_line(plan)]


def stack_line(plan: Plan) -> str:
    """Where the kernel puts the stack page (seed step 5), and why there."""
    why = f"below stack_top {plan.stack_top:#x}" if plan.stack_symbol else \
        f"below {plan.stack_top:#x}: the file has no stack_top symbol"
    where = "fresh page" if plan.needs_stack else "inside a loaded segment"
    return f"  stack   virt {plan.stack_page:#010x} size {layout.PAGE_SIZE:#x} rw- ({where} {why})"
