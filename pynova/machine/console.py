"""The serial console: the one place where the kernel's output goes."""

from __future__ import annotations

import sys
from typing import TextIO


class Console:
    """A serial line. It keeps everything written (tests and the Python API
    read it back) and, when given a stream, echoes it there as it comes."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._chunks: list[str] = []

    @classmethod
    def stdout(cls) -> Console:
        return cls(sys.stdout)

    def write(self, text: str) -> None:
        self._chunks.append(text)
        if self._stream is not None:
            self._stream.write(text)
            self._stream.flush()

    def write_bytes(self, data: bytes) -> None:
        self.write(data.decode("latin-1"))

    def line(self, text: str = "") -> None:
        self.write(text + "\n")

    @property
    def output(self) -> str:
        return "".join(self._chunks)
