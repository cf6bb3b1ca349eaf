"""Boot a machine with one program and run it: what ``pynova run`` and the
Python API share."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import NamedTuple

from pynova.kernel import Kernel, Outcome
from pynova.kernel.exceptions import Fault
from pynova.kernel.kernel import STATUS_BOOT, KernelPanic
from pynova.kernel.layout import KERNEL_END, MAX_MEM, MBI_PHYS, MIN_MEM
from pynova.kernel.limits import Limits, TimeUp
from pynova.kernel.parts import PYNOVA, Parts
from pynova.machine import BootLoaderError, Console, Machine


class RunResult(NamedTuple):
    """What one run of a program produced."""

    status: int
    reason: str
    output: str
    message: str = ""
    fault: Fault | None = None
    instructions: int | None = None
    output_dropped: int = 0  # characters of output the console did not keep
    #: What the program printed (call 1), when the console keeps it apart
    #: (a ProgramConsole); None otherwise.
    program_output: bytes | None = None


def read_module(path: str | os.PathLike[str], mem_size: int = MAX_MEM) -> bytes:
    """A program file's bytes, refused (KernelPanic, status 125) when a
    machine with ``mem_size`` bytes of RAM cannot hold it, before reading
    it: a regular file by its size, anything else (a pipe, a device) by
    reading no more than fits. OSError if it cannot be read."""
    room = mem_size - KERNEL_END
    with open(path, "rb") as f:
        info = os.fstat(f.fileno())
        if stat.S_ISREG(info.st_mode) and info.st_size > room:
            raise _too_big(f"{info.st_size} bytes", mem_size)
        data = f.read(room + 1)
    if len(data) > room:
        raise _too_big(f"more than {room} bytes", mem_size)
    return data


def _too_big(size: str, mem_size: int) -> KernelPanic:
    # The words of the boot loader's own refusal (machine/multiboot.py).
    return KernelPanic(f"boot error: module of {size} does not fit into {mem_size >> 20} MiB "
                       f"of RAM", STATUS_BOOT)


def check_mem(mem_size: int) -> None:
    if not MIN_MEM <= mem_size <= MAX_MEM or mem_size % 4096:
        raise ValueError(f"--mem must be a multiple of 4 KiB between {MIN_MEM >> 20} MiB "
                         f"and {MAX_MEM >> 20} MiB")


def boot(machine: Machine, modules: list[tuple[bytes, str]], *,
         quantum: int | None = None, limits: Limits | None = None,
         parts: Parts = PYNOVA, poison_frames: bool = False) -> Kernel:
    """Load the modules as a boot loader does, boot the kernel and run
    root_invoke. Raises KernelPanic if the kernel cannot start the task
    (and whatever a lab's part raises); the time limit running out on the
    way ends the task (``kernel.outcome``)."""
    try:
        mbi = machine.load_multiboot(modules, MBI_PHYS, KERNEL_END)
    except BootLoaderError as err:
        raise KernelPanic(f"boot error: {err}", STATUS_BOOT) from None
    kernel = Kernel(machine, quantum=quantum, limits=limits, parts=parts,
                    poison_frames=poison_frames)
    try:
        kernel.boot(mbi)
        kernel.root_invoke()
    except TimeUp:  # in a lab's part: the task ends before it ran
        kernel.time_up()
    except BaseException:
        kernel.disarm()  # its watchdog must not outlive the machine
        raise
    return kernel


def run_image(image: bytes, name: str, *, mem_size: int = 128 << 20,
              console: Console | None = None, max_insns: int | None = None,
              timeout: float | None = None, quantum: int | None = None,
              modules: list[tuple[bytes, str]] | None = None,
              count_instructions: bool = False, explain: bool = False,
              setup: Callable[[Kernel], None] | None = None,
              on_exit: Callable[[Kernel], None] | None = None,
              parts: Parts = PYNOVA, poison_frames: bool = False) -> RunResult:
    """Boot a fresh machine with ``image`` as the boot module and run it.

    ``explain`` adds fault explanations after exception reports; ``setup``
    sees the booted kernel before the first user instruction (tracers attach
    there), ``on_exit`` sees it after the task ended, before the machine
    is closed. ``parts`` and ``poison_frames`` make the kernel a lab's
    (kernel.py); an exception raised by a part is raised from here."""
    check_mem(mem_size)
    limits = Limits(max_insns, timeout)  # the clock starts here: loading counts
    console = console if console is not None else Console()
    with Machine(mem_size, console) as machine:
        try:
            kernel = boot(machine, modules if modules is not None else [(image, name)],
                          quantum=quantum, limits=limits, parts=parts,
                          poison_frames=poison_frames)
        except KernelPanic as err:
            console.line(str(err))
            reason = "elf" if str(err).startswith("ELF error") else "boot"
            return RunResult(err.status, reason, console.output, str(err),
                             output_dropped=console.dropped)
        try:
            outcome = kernel.outcome or _run(kernel, explain, count_instructions, setup)
            if on_exit is not None:
                on_exit(kernel)
        finally:
            kernel.disarm()
        counted = machine.cpu.instructions if machine.cpu.counting else None
        program = getattr(console, "program", None)
        return RunResult(outcome.status, outcome.reason, console.output, outcome.message,
                         outcome.fault, counted, console.dropped,
                         bytes(program) if program is not None else None)


def _run(kernel: Kernel, explain: bool, count_instructions: bool,
         setup: Callable[[Kernel], None] | None) -> Outcome:
    if explain:
        from pynova.tools.explain import explain_fault
        kernel.explain = explain_fault
    if count_instructions:
        kernel.cpu.set_counting(True)
    if setup is not None:
        setup(kernel)
    return kernel.run()
