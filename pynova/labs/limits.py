"""Limits: of one program run inside a check, and of the checks themselves."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

#: Wall-clock limit of one check's process, seconds.
CHECK_TIMEOUT = 5.0
#: Address-space limit (RLIMIT_AS) of one check's process. Unicorn reserves
#: about 1 GiB of address space for its translation cache on top of the
#: guest RAM, so a run with 128 MiB of RAM needs about 1.2 GiB.
CHECK_MEM_LIMIT = 2 << 30


@dataclass(frozen=True)
class Limits:
    """The limits of one run of a user program (``pynova run``'s options)."""

    mem: int = 128 << 20
    max_insns: int | None = None
    timeout: float | None = None
    quantum: int | None = 10000

    def replace(self, **changes: Any) -> Limits:
        return dataclasses.replace(self, **changes) if changes else self

    def run_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``pynova.runner.run_image``."""
        return {"mem_size": self.mem, "max_insns": self.max_insns,
                "timeout": self.timeout, "quantum": self.quantum}


def format_size(size: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size} bytes"
