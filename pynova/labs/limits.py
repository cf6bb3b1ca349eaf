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


def parse_size(text: str) -> int:
    """'128', '128M', '64MiB', '1G', '512K' -> bytes (a plain number is MiB,
    as ``pynova run --mem`` reads it). Raises ValueError."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    scale = 1 << 20
    if t and t[-1] in "KMG":
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[t[-1]]
        t = t[:-1]
    try:
        value = int(float(t) * scale)
    except ValueError:
        raise ValueError(f"not a memory size: {text!r}") from None
    if value <= 0:
        raise ValueError(f"not a memory size: {text!r}")
    return value


def format_size(size: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size} bytes"
