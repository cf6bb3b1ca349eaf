"""Address-space maps read from the page tables in guest RAM, in the style
of qemu's ``info mem`` / ``info tlb``: contiguous virtual ranges, the
physical frames behind them and the PTE flags (P RW US A D)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pynova.kernel.layout import PAGE_MASK, PAGE_SIZE
from pynova.kernel.ptab import ACCESSED, DIRTY, PRESENT, RW, USER, Ptab

if TYPE_CHECKING:
    from pynova.kernel.kernel import Kernel, Outcome

FLAG_BITS = ((PRESENT, "P"), (RW, "RW"), (USER, "US"), (ACCESSED, "A"), (DIRTY, "D"))
SHOWN = PRESENT | RW | USER | ACCESSED | DIRTY


@dataclass(frozen=True)
class Range:
    """Pages [virt, end) mapped to [phys, phys + size) with the same flags."""

    virt: int
    end: int
    phys: int
    flags: int

    @property
    def size(self) -> int:
        return self.end - self.virt

    @property
    def pages(self) -> int:
        return self.size // PAGE_SIZE

    @property
    def flag_text(self) -> str:
        return " ".join(name if self.flags & bit else "-" * len(name)
                        for bit, name in FLAG_BITS)

    def line(self) -> str:
        return (f"{self.virt:#010x}-{self.end:#010x}  {self.phys:#010x}-"
                f"{self.phys + self.size:#010x}  {self.size:#9x}  {self.flag_text}")


@dataclass(frozen=True)
class Thread:
    id: int
    stack_top: int
    esp: int
    eip: int
    state: str


@dataclass(frozen=True)
class AddressSpace:
    """A task's address space at one moment."""

    ranges: list[Range]
    page_directory: int
    page_tables: list[int]
    brk: int
    initial_break: int
    threads: list[Thread]
    modules: list[tuple[int, int, str]] = field(default_factory=list)


def ranges(ptab: Ptab, shown: int = SHOWN) -> list[Range]:
    """Merge the present user pages into maximal contiguous ranges (pages
    whose ``shown`` flags differ stay apart)."""
    return merge({virt: (pte & PAGE_MASK, pte & shown) for virt, pte in ptab.user_mappings()})


def merge(pages: dict[int, tuple[int, int]]) -> list[Range]:
    """Pages {virt: (phys, flags)} -> contiguous ranges."""
    out: list[Range] = []
    for virt, (phys, flags) in sorted(pages.items()):
        last = out[-1] if out else None
        if last and last.end == virt and last.phys + last.size == phys and last.flags == flags:
            out[-1] = Range(last.virt, virt + PAGE_SIZE, last.phys, flags)
        else:
            out.append(Range(virt, virt + PAGE_SIZE, phys, flags))
    return out


def page_tables(ptab: Ptab) -> list[int]:
    """Frames of the user-half page tables (the directory's present PDEs)."""
    frames = []
    for i in range(768):
        pde = ptab.walk(i << 22).pde
        if pde & PRESENT:
            frames.append(pde & PAGE_MASK)
    return frames


def snapshot(kernel: Kernel) -> AddressSpace:
    pd = kernel.pd
    assert pd is not None
    threads = [Thread(ec.id, ec.stack_top, ec.regs.esp, ec.regs.eip, ec.state.value)
               for ec in kernel.ecs]
    info = kernel.boot_info
    modules = [(m.start, m.end, m.cmdline) for m in info.modules] if info else []
    return AddressSpace(ranges(pd.ptab), pd.ptab.root, page_tables(pd.ptab), pd.brk,
                        pd.initial_break, threads, modules)


def format_space(space: AddressSpace) -> list[str]:
    lines = ["virtual                  physical                     size  flags",
             *(r.line() for r in space.ranges)]
    lines.append(f"{len(space.ranges)} ranges, "
                 f"{sum(r.pages for r in space.ranges)} pages; kernel half "
                 f"0xc0000000-0xffffffff supervisor-only (not listed)")
    lines.append(f"page directory {space.page_directory:#010x}, page tables "
                 + (", ".join(f"{f:#010x}" for f in space.page_tables) or "none"))
    heap = space.brk - space.initial_break
    lines.append(f"heap: break {space.brk:#010x} (start {space.initial_break:#010x}, "
                 f"{heap:#x} bytes)")
    for t in space.threads:
        lines.append(f"thread {t.id}: stack top {t.stack_top:#010x}, esp {t.esp:#010x}, "
                     f"eip {t.eip:#010x} ({t.state})")
    return lines


def inspect(modules: list[tuple[bytes, str]], *, at: str = "start",
            mem_size: int = 128 << 20, max_insns: int | None = None,
            timeout: float | None = None, quantum: int | None = None,
            **kernel_options: Any) -> tuple[AddressSpace, Outcome | None, str]:
    """Boot a fresh machine, stop at ``at`` (start: before the first user
    instruction; exit/fault: when the task has ended) and take a snapshot.
    Returns it with the outcome (None at start) and the console output.
    Raises KernelPanic when the kernel cannot boot. ``kernel_options``
    (parts, poison_frames) make the kernel a lab's (runner.boot)."""
    from pynova.machine import Console, Machine
    from pynova.runner import boot, check_mem
    from pynova.tools.explain import explain_fault

    check_mem(mem_size)
    console = Console()
    with Machine(mem_size, console) as machine:
        kernel = boot(machine, modules, quantum=quantum, **kernel_options)
        outcome = None
        if at != "start":
            kernel.explain = explain_fault
            outcome = kernel.run(max_insns=max_insns, timeout=timeout)
        return snapshot(kernel), outcome, console.output
