"""The emulated PC: RAM, one CPU, a serial console and a Multiboot loader.

This layer knows nothing of page tables, ELF files or system calls; the
kernel (``pynova.kernel``) drives it through ``PhysicalMemory`` and ``Cpu``.
"""

from __future__ import annotations

from collections.abc import Callable

from pynova.machine.console import Console
from pynova.machine.cpu import Cpu, Regs, Trap, TrapKind
from pynova.machine.memory import PhysicalMemory
from pynova.machine.multiboot import BootLoaderError, load_multiboot

__all__ = ["BootLoaderError", "Console", "Cpu", "Machine", "PhysicalMemory", "Regs",
           "Trap", "TrapKind"]

DEFAULT_MEM = 128 << 20


def unicorn_cpu(memory: PhysicalMemory) -> Cpu:
    from pynova.machine.unicorn_cpu import UnicornCpu
    return UnicornCpu(memory)


class Machine:
    """One PC. Many can exist in one process; nothing here is global."""

    def __init__(self, mem_size: int = DEFAULT_MEM, console: Console | None = None,
                 cpu_factory: Callable[[PhysicalMemory], Cpu] = unicorn_cpu) -> None:
        self.memory = PhysicalMemory(mem_size)
        self.cpu = cpu_factory(self.memory)
        self.console = console if console is not None else Console()

    def load_multiboot(self, modules: list[tuple[bytes, str]], info_addr: int,
                       first_free: int) -> int:
        """Load modules as a Multiboot boot loader would; returns the info address."""
        return load_multiboot(self.memory, modules, info_addr, first_free)

    def close(self) -> None:
        self.cpu.close()
        self.memory.close()

    def __enter__(self) -> Machine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
