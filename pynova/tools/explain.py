"""Fault explanations: what an exception report means, in words.

Printed after the kernel's report lines. For a page fault: the error code
decoded (Intel SDM vol. 3A, 4.7, Figure 4-12), the page walk for CR2 and
the bit that refused the access; for every exception: the faulting
instruction (Capstone) and where it is (``.symtab`` symbol + offset).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from pynova.kernel.descriptors import gdt
from pynova.kernel.exceptions import PF_I, PF_P, PF_U, PF_W, Fault
from pynova.kernel.layout import (
    PAGE_SIZE,
    SEL_USER_CODE,
    SEL_USER_DATA,
    USER_END,
    USER_STACK_TOP,
    align_down,
)
from pynova.kernel.pd import Pd, UserMemoryError
from pynova.kernel.ptab import KERNEL_PDE_FIRST, LARGE, PRESENT, RW, USER, Walk
from pynova.tools.symbols import SymbolTable

if TYPE_CHECKING:
    from pynova.kernel.kernel import Kernel

PRIVILEGED = {"cli", "sti", "hlt", "in", "out", "insb", "insw", "insd", "outsb", "outsw",
              "outsd", "lgdt", "lidt", "lldt", "ltr", "lmsw", "clts", "invd", "wbinvd",
              "invlpg", "rdmsr", "wrmsr", "iretd"}
MAX_INSN = 15
#: esp this close above the stack page's bottom (or below it) means the stack is full
STACK_SLACK = 128


class Instruction(NamedTuple):
    address: int
    size: int
    mnemonic: str
    operands: str

    @property
    def text(self) -> str:
        return f"{self.mnemonic} {self.operands}".strip()


def flags_text(entry: int) -> str:
    """'P RW US A D' style names of the set attribute bits of a PDE/PTE."""
    names = [(PRESENT, "P"), (RW, "RW"), (USER, "US"), (1 << 5, "A"), (1 << 6, "D"),
             (LARGE, "PS")]
    return " ".join(name for bit, name in names if entry & bit) or "-"


def decode_error_code(code: int, fetch: bool) -> str:
    """The page-fault error code, bit by bit."""
    parts = [
        f"P={code & PF_P} " + ("protection violation" if code & PF_P else "page not present"),
        f"W/R={code >> 1 & 1} " + ("write" if code & PF_W else "read"),
        f"U/S={code >> 2 & 1} " + ("user mode" if code & PF_U else "supervisor mode"),
        f"I/D={code >> 4 & 1} " + ("instruction fetch" if fetch else "data access"),
    ]
    text = f"error code {code:#x}: " + ", ".join(parts)
    if fetch and not code & PF_I:
        text += " (I/D stays 0 without NX; a fetch, since CR2 = EIP)"
    return text


# ------------------------------------------------------------- page walks
def refusing_entry(walk: Walk, code: int) -> tuple[str, int, str] | None:
    """Which entry of the walk refuses an access with page-fault error code
    ``code``, and which of its bits: ("PDE" or "PTE", the entry, "P", "US"
    or "RW"); None when both levels allow it (SDM vol. 3A, 4.6)."""
    pde, pte = walk.pde, walk.pte
    if not pde & PRESENT:
        return "PDE", pde, "P"
    if not pde & LARGE and not pte & PRESENT:
        return "PTE", pte, "P"
    entry, name = (pde, "PDE") if pde & LARGE else (pte, "PTE")
    # When both levels lack a bit, the PTE is named: it is what the page's
    # own mapping says.
    for needed, bit, text in ((PF_U, USER, "US"), (PF_W, RW, "RW")):
        if code & needed and not (pde & bit and (pde & LARGE or pte & bit)):
            return (name, entry, text) if not entry & bit else ("PDE", pde, text)
    return None


def access_text(code: int, fetch: bool) -> str:
    return "instruction fetch from" if fetch else ("write to" if code & PF_W else "read of")


def refusal(walk: Walk, code: int, fetch: bool) -> tuple[str, str]:
    """(what was attempted, which entry and bit refused it)."""
    access = access_text(code, fetch)
    found = refusing_entry(walk, code)
    if found is None:
        entry, name = (walk.pde, "PDE") if walk.pde & LARGE else (walk.pte, "PTE")
        return f"{access} a page", f"{name} {entry:#010x}: allowed now (changed since the fault?)"
    name, entry, bit = found
    if bit == "P" and name == "PDE":
        return f"{access} an unmapped address", f"PDE {entry:#010x}: P=0, no page table"
    if bit == "P":
        return f"{access} an unmapped page", f"PTE {entry:#010x}: P=0"
    if bit == "US":
        return f"{access} a supervisor-only page", f"{name} {entry:#010x}: US=0"
    return f"{access} a read-only page", f"{name} {entry:#010x}: RW=0"


def walk_lines(walk: Walk) -> list[str]:
    pde_i, pte_i = walk.virt >> 22, walk.virt >> 12 & 0x3FF
    lines = [f"walk {walk.virt:#010x}: PDE[{pde_i}] at {walk.pde_addr:#x} = "
             f"{walk.pde:#010x} ({flags_text(walk.pde)})"]
    if walk.pde & PRESENT and not walk.pde & LARGE:
        lines.append(f"{'':18}PTE[{pte_i}] at {walk.pte_addr:#x} = {walk.pte:#010x} "
                     f"({flags_text(walk.pte)})")
    if walk.phys is not None:
        lines.append(f"{'':18}-> physical {walk.phys:#010x}")
    return lines


# ------------------------------------------------------ code and symbols
def read_code(pd: Pd, addr: int, size: int = MAX_INSN) -> bytes:
    """As many bytes from ``addr`` as the user could read (up to ``size``)."""
    for n in range(size, 0, -1):
        try:
            return pd.read_user(addr, n)
        except UserMemoryError:
            continue
    return b""


def disassemble(code: bytes, addr: int) -> Instruction | None:
    from pynova.machine.decode import Decoder

    decoder = Decoder()
    try:
        found = decoder.first(code, addr) if code else None
    finally:
        decoder.close()
    return Instruction(addr, *found) if found else None


def instruction_at(pd: Pd, addr: int) -> Instruction | None:
    return disassemble(read_code(pd, addr), addr)


def call_before(pd: Pd, ret: int) -> Instruction | None:
    """The call instruction that ends right at the return address ``ret``."""
    for size in (2, 3, 5, 6, 7):
        insn = instruction_at(pd, ret - size)
        if insn is not None and insn.size == size and insn.mnemonic.startswith("call"):
            return insn
    return None


def where(symbols: SymbolTable, addr: int) -> str:
    """'main+0xc' (plus a label sitting exactly there), or the bare address."""
    name = symbols.describe(addr)
    labels = [s.name for s in symbols.symbols if s.value == addr and s.size == 0]
    extra = [label for label in labels if name is None or not name.startswith(label)]
    text = name if name is not None else f"{addr:#x}"
    return f"{text} <{', '.join(extra)}>" if extra else text


def insn_phrase(symbols: SymbolTable, insn: Instruction | None, addr: int) -> str:
    if insn is None:
        return f"at {where(symbols, addr)} (no readable instruction there)"
    return f"in {where(symbols, addr)}: {insn.text}"


# ------------------------------------------------------------ per vector
class Context(NamedTuple):
    """What an explanation looks at: the address space, symbols, esp and
    the thread's initial stack top."""

    pd: Pd
    symbols: SymbolTable
    esp: int
    stack_top: int = USER_STACK_TOP


def explain_page_fault(fault: Fault, ctx: Context) -> list[str]:
    code, eip, cr2 = fault.error_code, fault.eip, fault.cr2
    fetch = bool(code & PF_I) or cr2 == eip
    walk = ctx.pd.ptab.walk(cr2)
    attempt, refused = refusal(walk, code, fetch)
    head = f"{attempt} {cr2:#x} ({refused})" if fetch else f"{attempt} ({refused})"
    if fetch:
        caller = _caller(ctx)
        head += f", {caller}" if caller else ""
    else:
        head += f", {insn_phrase(ctx.symbols, instruction_at(ctx.pd, eip), eip)}"
        overflow = stack_overflow(cr2, ctx)
        if overflow:
            return [f"stack overflow: {head}", overflow, decode_error_code(code, fetch),
                    *walk_lines(walk)]
    return [head, decode_error_code(code, fetch)] + walk_lines(walk)


def stack_overflow(cr2: int, ctx: Context) -> str | None:
    """Why an access just below the stack page, with esp at that page's
    bottom, is the stack running out; None when it is not that."""
    bottom = align_down(ctx.stack_top - 1)
    if not (bottom - PAGE_SIZE <= cr2 < bottom and ctx.esp < bottom + STACK_SLACK):
        return None
    return (f"the stack is the page {bottom:#x}-{bottom + PAGE_SIZE:#x} below stack_top "
            f"{ctx.stack_top:#x}; esp {ctx.esp:#x} ran off its bottom")


def _caller(ctx: Context) -> str | None:
    """For a jump into nowhere: the call that got there, from [esp]."""
    try:
        ret = int.from_bytes(ctx.pd.read_user(ctx.esp, 4), "little")
    except UserMemoryError:
        return None
    call = call_before(ctx.pd, ret)
    if call is None:
        return None
    return f"called from {where(ctx.symbols, call.address)}: {call.text}"


def explain_gp(fault: Fault, ctx: Context, insn: Instruction | None) -> str:
    code = fault.error_code
    if code & 2:
        return (f"int {code >> 3:#x}: the IDT gate of vector {code >> 3} has DPL 0, "
                f"so ring 3 may not use it (error code {code:#x})")
    if insn is not None and insn.mnemonic in PRIVILEGED:
        return f"privileged instruction {insn.mnemonic} in user mode (CPL 3, IOPL 0)"
    if code:
        return f"protection check failed on selector {code & 0xFFF8:#x} (error code {code:#x})"
    return "general protection: the instruction broke a protection rule in ring 3"


def headline(fault: Fault, ctx: Context, insn: Instruction | None) -> str:
    v = fault.vector
    if v == 13:
        return explain_gp(fault, ctx, insn)
    if v == 0:
        return "divide error: division by zero (or a quotient too big for the register)"
    if v == 6:
        name = ctx.symbols.describe(fault.eip) or ""
        if insn is not None and insn.mnemonic == "ud2" and name.startswith("_start"):
            return "invalid opcode ud2: main returned into start.S, which ends in ud2"
        return "invalid opcode: the CPU cannot decode this instruction"
    if v == 3:
        return "breakpoint: int3 executed with no debugger attached"
    return f"{fault.name} (vector {v})"


# --------------------------------------------------- ring 0: the iret
#: pynova's GDT (descriptors.py), entry by entry.
GDT_ENTRIES = ("the null descriptor", "the kernel's code segment", "the kernel's data segment",
               "the user code segment", "the user data segment", "the TSS")
FRAME_WORDS = ("eip", "cs", "eflags", "esp", "ss")
assert len(GDT_ENTRIES) * 8 == len(gdt(0))


def in_ring0(fault: Fault) -> bool:
    """Whether the CPU took ``fault`` in ring 0. pynova's only ring-0 code
    is the kernel's iret; a ring-3 fetch from a kernel address is a page
    fault with U/S=1."""
    return fault.eip >= USER_END and not (fault.vector == 14 and fault.error_code & PF_U)


def selector_text(selector: int) -> str:
    index = selector >> 3
    if selector & 4:
        return f"{selector:#x} selects from an LDT (TI=1), and there is none"
    if index == 0:
        return f"{selector:#x} is the null selector"
    if index >= len(GDT_ENTRIES):
        return (f"{selector:#x} selects GDT entry {index}, beyond the {len(GDT_ENTRIES)} "
                f"entries of pynova's GDT")
    return f"{selector:#x} selects GDT entry {index}, {GDT_ENTRIES[index]}, with RPL {selector & 3}"


def explain_iret(fault: Fault, frame: tuple[int, ...]) -> list[str]:
    """Why the kernel's iret refused the frame (Intel SDM vol. 2A, IRET:
    a return to ring 3 checks the new cs and ss before it loads them)."""
    shown = ", ".join(f"{n}={w:#x}" for n, w in zip(FRAME_WORDS, frame, strict=True))
    code = fault.error_code
    head = f"the kernel's iret refused the frame [{shown}]"
    need = (f"a return to ring 3 needs cs = SEL_USER_CODE {SEL_USER_CODE:#x} (word 1) and "
            f"ss = SEL_USER_DATA {SEL_USER_DATA:#x} (word 4): iret pops eip, cs, eflags, esp, "
            f"ss in that order (SDM vol. 3A, 6.12.1, Figure 6-4)")
    if fault.vector in (10, 11, 12, 13):
        for i in (1, 4):
            # The error code names the selector refused; a null one is #GP(0).
            if frame[i] & ~3 == code & ~3 and frame[i] != (SEL_USER_CODE if i == 1
                                                            else SEL_USER_DATA):
                named = ": the selector" if code else ""
                head = (f"the kernel's iret refused word {i} of the frame, the new "
                        f"{FRAME_WORDS[i]}: {selector_text(frame[i])} ({fault.name}, error "
                        f"code {code:#x}{named})")
                return [head, need]
    return [f"{head}: {fault.name} with error code {code:#x}", need]


def explain_ring0(kernel: Kernel, fault: Fault) -> list[str]:
    """A page fault in ring 0 is the kernel losing its own mapping (a lab's
    insert_mapping that wrote into the kernel half of the directory);
    anything else is the iret refusing its frame."""
    if fault.vector != 14 or kernel.pd is None:
        return explain_iret(fault, kernel.popped_frame())
    walk = kernel.pd.ptab.walk(fault.cr2)
    return [f"a page fault in ring 0 at {fault.cr2:#x}: the kernel's own mapping of its "
            f"memory is gone from the task's page directory; entries {KERNEL_PDE_FIRST} and "
            f"up are the kernel's, and something (insert_mapping?) wrote over PDE"
            f"[{fault.cr2 >> 22}]", *walk_lines(walk)]


def explain(fault: Fault, ctx: Context) -> list[str]:
    """The explanation lines for one fault."""
    if fault.vector == 14:
        lines = explain_page_fault(fault, ctx)
    else:
        addr = fault.eip - 1 if fault.vector == 3 else fault.eip
        insn = instruction_at(ctx.pd, addr)
        lines = [f"{headline(fault, ctx, insn)}, {insn_phrase(ctx.symbols, insn, addr)}"]
    return ["why: " + lines[0]] + ["  " + line for line in lines[1:]]


def module_symbols(kernel: Kernel) -> SymbolTable:
    """The boot module's symbols, read where the module lies in guest RAM
    (it may be as large as RAM: no copy of it is made)."""
    info = kernel.boot_info
    if info is None or not info.modules:
        return SymbolTable([])
    mod = info.modules[0]
    return SymbolTable.from_elf(kernel.memory.view[mod.start:mod.end],
                                until=kernel.limits.deadline)


def explain_fault(kernel: Kernel, fault: Fault) -> list[str]:
    """The hook the runner installs as ``Kernel.explain``: never raises."""
    ec = kernel.ecs[fault.ec] if fault.ec < len(kernel.ecs) else kernel.current
    if kernel.limits.time_is_up():  # it counts in the run's time limit
        return ["why: (no explanation: the time limit has run out)"]
    try:
        if in_ring0(fault):
            lines = explain_ring0(kernel, fault)
            return ["why: " + lines[0]] + ["  " + line for line in lines[1:]]
        ctx = Context(ec.pd, module_symbols(kernel), ec.regs.esp, ec.stack_top)
        return explain(fault, ctx)
    except Exception as err:  # noqa: BLE001 - an explanation must not kill the report
        return [f"why: (no explanation: {type(err).__name__}: {err})"]
