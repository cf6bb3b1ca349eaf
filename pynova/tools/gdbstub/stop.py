"""Why the target stopped, and the stop reply packet that says so.

Signal numbers are GDB's own (``gdb/signals.def``), which the remote
protocol uses; they equal Linux's for the ones below but not, for example,
for SIGBUS (GDB: 10, Linux i386: 7).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum


class Signal(IntEnum):
    """GDB signal numbers used by pynova's stop replies."""

    SIGINT = 2
    SIGILL = 4
    SIGTRAP = 5
    SIGFPE = 8
    SIGKILL = 9
    SIGBUS = 10
    SIGSEGV = 11


class StopKind(Enum):
    """The three shapes of stop reply: ``T`` (signal), ``W`` (exit), ``X``."""

    SIGNAL = "T"
    EXITED = "W"
    KILLED = "X"


class WatchKind(Enum):
    """Stop-reply field names for watchpoint hits (Z2, Z3, Z4)."""

    WRITE = "watch"
    READ = "rwatch"
    ACCESS = "awatch"


@dataclass(frozen=True)
class StopReason:
    """A stop as the target reports it to the session.

    ``value`` is the signal for SIGNAL and KILLED, the exit status for
    EXITED. ``thread`` is a gdb thread id (positive). ``fault_address`` and
    ``fault_code`` are ``si_addr`` and ``si_code`` of the signal's siginfo:
    for a page fault CR2 and SEGV_MAPERR/SEGV_ACCERR.
    """

    kind: StopKind
    value: int
    thread: int | None = None
    swbreak: bool = False
    hwbreak: bool = False
    watch: tuple[WatchKind, int] | None = None
    fault_address: int | None = None
    fault_code: int = 0

    @classmethod
    def signal(cls, sig: int, thread: int | None = None, **extra: object) -> StopReason:
        """A stop with a signal (``T``): trap, fault, interrupt."""
        return cls(StopKind.SIGNAL, sig, thread, **extra)  # type: ignore[arg-type]

    @classmethod
    def exited(cls, status: int) -> StopReason:
        """The program ended with ``status`` (``W``)."""
        return cls(StopKind.EXITED, status & 0xFF)

    @classmethod
    def killed(cls, sig: int) -> StopReason:
        """The program was ended by signal ``sig`` (``X``)."""
        return cls(StopKind.KILLED, sig)

    @property
    def running(self) -> bool:
        """Whether the program still exists after this stop."""
        return self.kind is StopKind.SIGNAL


def format_stop(stop: StopReason) -> str:
    """The stop reply packet body for ``stop``."""
    head = f"{stop.kind.value}{stop.value & 0xFF:02x}"
    if stop.kind is not StopKind.SIGNAL:
        return head
    return head + "".join(f"{key}:{val};" for key, val in _stop_fields(stop))


def _stop_fields(stop: StopReason) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    if stop.thread is not None:
        fields.append(("thread", f"{stop.thread:x}"))
    if stop.watch is not None:
        kind, address = stop.watch
        fields.append((kind.value, f"{address:x}"))
    elif stop.swbreak:
        fields.append(("swbreak", ""))
    elif stop.hwbreak:
        fields.append(("hwbreak", ""))
    return fields
