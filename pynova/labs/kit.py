"""What the kernel labs' checks share: a machine booted with the student's
part in place, runs of user programs compared with pynova's own, and the
hardware's view of a wrong page-table entry (from pynova/tools/explain.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from pynova.kernel.exceptions import PF_I, PF_P, PF_U, PF_W, Fault
from pynova.kernel.kernel import Kernel
from pynova.kernel.layout import KERNEL_END, MBI_PHYS
from pynova.kernel.parts import PYNOVA, Parts
from pynova.kernel.pd import Pd
from pynova.kernel.ptab import PRESENT, RW, USER, Walk
from pynova.kernel.root_task import RootTask
from pynova.labs.lab import Student, StudentCodeError, fail
from pynova.labs.limits import Limits
from pynova.labs.programs import ProgramError, image
from pynova.machine import Console, Machine
from pynova.program_output import ProgramConsole
from pynova.runner import RunResult, run_image
from pynova.tools.explain import refusing_entry

#: The labs' machines: small (fast to make), and the course's frame pool.
MEM = 16 << 20
#: Limits of one run in a check: far above what the programs need.
RUN_LIMITS = Limits(mem=MEM, max_insns=5_000_000, timeout=2.0, quantum=10000)

CAUSES = {
    ("PTE", "US"): "its PTE has U/S=0, so the mapping lacks USER",
    ("PDE", "US"): "its page-directory entry has U/S=0, and the CPU allows an access only "
                   "when both levels allow it: the PDE must have USER too",
    ("PTE", "RW"): "its PTE has R/W=0: the page is mapped read-only",
    ("PDE", "RW"): "its page-directory entry has R/W=0, and the CPU allows an access only "
                   "when both levels allow it: the PDE must have RW too",
    ("PTE", "P"): "its PTE has P=0: the page is not mapped",
    ("PDE", "P"): "its page-directory entry has P=0 (no page table): the page is not mapped",
}


def function(student: Student, name: str) -> Callable[..., Any]:
    """The student's function ``name`` (the workspace file defines it)."""
    module = student.module()
    fn = getattr(module, name, None)
    if not callable(fn):
        file = student.files[0].name if student.files else "your file"
        raise StudentCodeError(f"{file} has no function {name}(); the kernel calls it "
                               f"(keep the name and arguments the workspace came with)")
    return fn


def program(name: str) -> bytes:
    """A check program's bytes; a CheckFailed that says pynova could not
    build it (not the student's fault)."""
    try:
        return image(name)
    except ProgramError as err:
        raise fail(f"the check's user program {name}", str(err),
                   "pynova needs its i386 toolchain to build the checks' programs "
                   "(gcc -m32 and ld -m elf_i386, or clang)") from None


@contextmanager
def booted(data: bytes, name: str = "program", *, parts: Parts = PYNOVA,
           mem: int = MEM) -> Iterator[Kernel]:
    """A kernel booted with the module ``data``, before root_invoke; its
    frames come with junk in them, as in every lab run."""
    with Machine(mem, Console()) as machine:
        kernel = Kernel(machine, parts=parts, poison_frames=True)
        kernel.boot(machine.load_multiboot([(data, name)], MBI_PHYS, KERNEL_END))
        yield kernel


@contextmanager
def root_task(kernel: Kernel, console: Console | None = None) -> Iterator[tuple[Pd, RootTask]]:
    """A new Pd for the boot module and the RootTask root_invoke gets."""
    pd = kernel.new_pd()
    task = RootTask(kernel.memory, console or kernel.console, pd, kernel.boot_module())
    try:
        yield pd, task
    finally:
        task.close()


class Run(NamedTuple):
    """A run of a user program, with what a diagnosis looks at."""

    result: RunResult
    output: bytes               # the program's own output
    frame: list[int] | None     # the first Ec's iret frame (None: no Ec was made)
    walk: Walk | None           # the page walk of the fault's cr2, at the end

    @property
    def fault(self) -> Fault | None:
        return self.result.fault


def run(data: bytes, name: str, parts: Parts, limits: Limits = RUN_LIMITS,
        prepare: Callable[[Kernel], None] | None = None) -> Run:
    """Run ``data`` with ``parts``; raises what the student's code raises.
    ``prepare`` sees the kernel before the first user instruction."""
    console = ProgramConsole(keep=1 << 20)
    seen: dict[str, Any] = {}

    def setup(kernel: Kernel) -> None:
        seen["frame"] = kernel.ecs[0].iret_frame()
        if prepare is not None:
            prepare(kernel)

    def on_exit(kernel: Kernel) -> None:
        fault = kernel.outcome.fault if kernel.outcome is not None else None
        if fault is not None and kernel.pd is not None:
            seen["walk"] = kernel.pd.ptab.walk(fault.cr2 if fault.vector == 14 else fault.eip)

    result = run_image(data, name, console=console, explain=True, setup=setup,
                       on_exit=on_exit, parts=parts, poison_frames=True, **limits.run_kwargs())
    return Run(result, bytes(console.program), seen.get("frame"), seen.get("walk"))


# ------------------------------------------------------------ words
def flags(entry: int) -> str:
    """The P, RW and US bits of an entry or attribute, by name."""
    names = [name for bit, name in ((PRESENT, "P"), (RW, "RW"), (USER, "US")) if entry & bit]
    return " ".join(names) or "none of P RW US"


def entry_text(entry: int) -> str:
    return f"{entry:#010x} ({flags(entry)})"


def _access(code: int, fetch: bool) -> str:
    return "fetching" if fetch else ("writing" if code & PF_W else "reading")


def would_fault(walk: Walk, virt: int, *, write: bool = False, fetch: bool = False) -> str | None:
    """How the CPU would refuse a ring-3 access to ``virt`` through
    ``walk``, or None when it would allow it."""
    code = PF_U | (PF_W if write else 0) | (PF_P if walk.present else 0)
    found = refusing_entry(walk, code)
    if found is None:
        return None
    name, _entry, bit = found
    return f"in ring 3 the CPU would fault {_access(code, fetch)} {virt:#x}: {CAUSES[name, bit]}"


def fault_story(fault: Fault, walk: Walk | None) -> str:
    """What the CPU did, in its terms: 'the CPU faulted fetching 0x3000 in
    ring 3: its PTE has U/S=0, so the mapping lacks USER'."""
    if fault.vector != 14 or walk is None:
        return f"the CPU raised {fault.name} (vector {fault.vector}) at eip={fault.eip:#x}"
    fetch = bool(fault.error_code & PF_I) or fault.cr2 == fault.eip
    head = f"the CPU faulted {_access(fault.error_code, fetch)} {fault.cr2:#x} in ring 3"
    found = refusing_entry(walk, fault.error_code)
    if found is None:
        return head
    name, _entry, bit = found
    return f"{head}: {CAUSES[name, bit]}"


def describe(r: RunResult) -> str:
    """How a run ended, in one line."""
    if r.fault is not None:
        f = r.fault
        where = "in ring 0, in the kernel's iret" if r.reason == "kernel" else "in ring 3"
        return (f"{f.name} {where} at eip={f.eip:#x} cr2={f.cr2:#x} (error code "
                f"{f.error_code:#x}), exit status {r.status}")
    text = f"the run ended by {r.reason!r} with exit status {r.status}"
    return f"{text} ({r.message})" if r.message else text


def both_runs(name: str, parts: Parts,
              prepare: Callable[[Kernel], None] | None = None) -> tuple[bytes, Run, Run]:
    """(the program, pynova's own run of it, the run with ``parts``)."""
    data = program(name)
    return data, run(data, name, PYNOVA, prepare=prepare), run(data, name, parts, prepare=prepare)


def ran_alike(got: Run, want: Run) -> bool:
    """Both runs ended alike (status, reason, fault) with the same output."""
    g, w = got.result, want.result
    return (g.status, g.reason, g.fault) == (w.status, w.reason, w.fault) \
        and got.output == want.output


def run_text(r: Run, name: str) -> str:
    return f"{describe(r.result)}; {name} printing {short(r.output)}"


def short(value: object, limit: int = 120) -> str:
    """A value in a message: output as text, anything else as repr, cut."""
    if isinstance(value, bytes):
        text = value.decode("latin-1")
        return repr(text if len(text) <= limit else text[:limit] + "...") if text else "nothing"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
