"""The ``siginfo_t`` gdb reads with ``qXfer:siginfo:read`` (``$_siginfo``).

Layout of Linux's i386 ``siginfo_t`` (128 bytes): ``si_signo``,
``si_errno``, ``si_code`` (ints), then the union whose ``_sigfault``
member starts with ``si_addr``. Signal numbers inside are Linux's.
"""

from __future__ import annotations

import struct

from pynova.tools.gdbstub.stop import Signal, StopKind, StopReason

SIGINFO_SIZE = 128
#: gdb signal numbers that differ from Linux i386's.
_LINUX_SIGNAL = {int(Signal.SIGBUS): 7}

# si_code values (Linux uapi asm-generic/siginfo.h).
SEGV_MAPERR = 1
SEGV_ACCERR = 2
ILL_ILLOPN = 2
FPE_INTDIV = 1
TRAP_BRKPT = 1
SI_KERNEL = 0x80


def linux_signal(gdb_signal: int) -> int:
    """The Linux number of a gdb signal."""
    return _LINUX_SIGNAL.get(gdb_signal, gdb_signal)


def siginfo(stop: StopReason) -> bytes:
    """The siginfo of a signal stop; ``ValueError`` for other stops."""
    if stop.kind is not StopKind.SIGNAL:
        raise ValueError("no signal: the program is not stopped by one")
    address = stop.fault_address or 0
    head = struct.pack("<iiiI", linux_signal(stop.value), 0, stop.fault_code, address)
    return head.ljust(SIGINFO_SIZE, b"\0")
