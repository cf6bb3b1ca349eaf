"""Boot a machine with one program and run it: what ``pynova run`` and the
Python API share."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from pynova.kernel import Kernel, Outcome
from pynova.kernel.exceptions import Fault
from pynova.kernel.kernel import STATUS_BOOT, KernelPanic
from pynova.kernel.layout import KERNEL_END, MAX_MEM, MBI_PHYS, MIN_MEM
from pynova.machine import BootLoaderError, Console, Machine


class RunResult(NamedTuple):
    """What one run of a program produced."""

    status: int
    reason: str
    output: str
    message: str = ""
    fault: Fault | None = None
    instructions: int | None = None


def check_mem(mem_size: int) -> None:
    if not MIN_MEM <= mem_size <= MAX_MEM or mem_size % 4096:
        raise ValueError(f"--mem must be a multiple of 4 KiB between {MIN_MEM >> 20} MiB "
                         f"and {MAX_MEM >> 20} MiB")


def boot(machine: Machine, modules: list[tuple[bytes, str]], *,
         quantum: int | None = None) -> Kernel:
    """Load the modules as a boot loader does, boot the kernel and run
    root_invoke. Raises KernelPanic if the kernel cannot start the task."""
    try:
        mbi = machine.load_multiboot(modules, MBI_PHYS, KERNEL_END)
    except BootLoaderError as err:
        raise KernelPanic(f"boot error: {err}", STATUS_BOOT) from None
    kernel = Kernel(machine, quantum=quantum)
    kernel.boot(mbi)
    kernel.root_invoke()
    return kernel


def run_image(image: bytes, name: str, *, mem_size: int = 128 << 20,
              console: Console | None = None, max_insns: int | None = None,
              timeout: float | None = None, quantum: int | None = None,
              modules: list[tuple[bytes, str]] | None = None,
              count_instructions: bool = False, explain: bool = False,
              setup: Callable[[Kernel], None] | None = None,
              on_exit: Callable[[Kernel], None] | None = None) -> RunResult:
    """Boot a fresh machine with ``image`` as the boot module and run it.

    ``explain`` adds fault explanations after exception reports; ``setup``
    sees the booted kernel before the first user instruction (tracers attach
    there), ``on_exit`` sees it after the task ended, before the machine
    is closed."""
    check_mem(mem_size)
    console = console if console is not None else Console()
    with Machine(mem_size, console) as machine:
        try:
            kernel = boot(machine, modules if modules is not None else [(image, name)],
                          quantum=quantum)
        except KernelPanic as err:
            console.line(str(err))
            reason = "elf" if str(err).startswith("ELF error") else "boot"
            return RunResult(err.status, reason, console.output, str(err))
        if explain:
            from pynova.tools.explain import explain_fault
            kernel.explain = explain_fault
        if count_instructions:
            machine.cpu.set_counting(True)
        if setup is not None:
            setup(kernel)
        outcome: Outcome = kernel.run(max_insns=max_insns, timeout=timeout)
        if on_exit is not None:
            on_exit(kernel)
        counted = machine.cpu.instructions if machine.cpu.counting else None
        return RunResult(outcome.status, outcome.reason, console.output, outcome.message,
                         outcome.fault, counted)
