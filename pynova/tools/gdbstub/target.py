"""The interface a debuggable program offers to the protocol session."""

from __future__ import annotations

from enum import IntEnum
from typing import Protocol

from pynova.tools.gdbstub.regs import Registers
from pynova.tools.gdbstub.stop import StopReason


class TargetError(Exception):
    """An operation the target refuses; answered with ``E<errno>``."""

    errno = 1


class MemoryFault(TargetError):
    """No byte at the address is accessible (unmapped or not user)."""

    errno = 14  # EFAULT


class BreakKind(IntEnum):
    """The ``Z``/``z`` packet types."""

    SOFTWARE = 0
    HARDWARE = 1
    WRITE_WATCH = 2
    READ_WATCH = 3
    ACCESS_WATCH = 4


class Target(Protocol):
    """What the session needs from the debugged program.

    Thread ids are gdb's: positive integers. Every method may raise
    :class:`TargetError`; none is called while :meth:`resume` runs except
    :meth:`interrupt`, which must be safe to call from another thread.
    """

    def threads(self) -> list[int]:
        """The live threads, the first being the main one."""
        ...

    def read_registers(self, thread: int) -> Registers:
        """The 16 registers of ``thread`` by name (see ``regs``)."""
        ...

    def write_registers(self, thread: int, regs: Registers) -> None:
        """Set the registers named in ``regs`` (a subset is allowed)."""
        ...

    def read_memory(self, address: int, length: int) -> bytes:
        """Up to ``length`` bytes at a user virtual address.

        May return fewer bytes when the range runs into an unmapped page;
        raises :class:`MemoryFault` when not even the first byte is readable.
        """
        ...

    def write_memory(self, address: int, data: bytes) -> None:
        """Write all of ``data`` or nothing; :class:`MemoryFault` if unmapped."""
        ...

    def insert_breakpoint(self, kind: BreakKind, address: int, length: int) -> bool:
        """Insert a break/watchpoint; False when ``kind`` is unsupported."""
        ...

    def remove_breakpoint(self, kind: BreakKind, address: int, length: int) -> bool:
        """Remove a break/watchpoint; False when ``kind`` is unsupported."""
        ...

    def resume(self, step: bool, thread: int | None, signal: int = 0) -> StopReason:
        """Run (or step ``thread``) until the next stop, and say why.

        ``signal`` non-zero asks to deliver that signal; pynova has no
        signal handlers, so a fatal signal ends the program (``X``).
        """
        ...

    def interrupt(self) -> None:
        """Ask a running :meth:`resume` to stop soon with SIGINT (thread-safe)."""
        ...

    def kill(self) -> None:
        """End the program now."""
        ...

    def time_left(self) -> float | None:
        """Seconds left of the program's time limit (0 once it has run
        out), None without one; the session ends when it runs out."""
        ...

    def time_up(self) -> None:
        """The time limit ran out while the debugger held the program:
        end it as the limit ends a program (not as ``kill`` does)."""
        ...

    def detach(self) -> None:
        """Remove all breakpoints and let the program run on undebugged."""
        ...
