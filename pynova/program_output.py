"""A run's output: the program's own bytes apart from the kernel's lines,
and a stdout that a closed pipe or a full disk cannot turn into a traceback.

The kernel writes what a program prints (the print call) with
``Console.write_bytes`` and its own lines (banner, load lines, reports)
with ``Console.line``; :class:`ProgramConsole` keeps the first apart.
"""

from __future__ import annotations

import errno
import os
from typing import TextIO

from pynova.machine import Console
from pynova.machine.console import DEFAULT_KEEP


class GuardedStdout:
    """A run's output stream (stdout). Text is written as the bytes it
    stands for (the console holds the program's bytes as latin-1), so the
    program's output reaches stdout byte for byte. The first write that
    fails (a reader that closed the pipe, a full disk) is remembered and
    everything after it is dropped: the run goes on and ends with the
    program's own status."""

    def __init__(self, stream: TextIO) -> None:
        self._text = stream
        self._stream = getattr(stream, "buffer", None)  # None: a text-only stream
        self.error: OSError | None = None

    def write(self, text: str) -> None:
        try:
            data = text.encode("latin-1")
        except UnicodeEncodeError:  # a kernel line naming a non-latin-1 file
            data = text.encode("utf-8", "replace")
        self.write_bytes(data)

    def write_bytes(self, data: bytes) -> None:
        if self.error is not None:
            return
        try:
            if self._stream is None:
                self._text.write(data.decode("latin-1"))
                self._text.flush()
            else:
                self._stream.write(data)
                self._stream.flush()
        except OSError as err:
            self._fail(err)

    def flush(self) -> None:
        pass  # write_bytes flushes

    def _fail(self, err: OSError) -> None:
        self.error = err
        try:  # what is still buffered goes nowhere, also at interpreter exit
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._text.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass

    @property
    def problem(self) -> str | None:
        """A one-line reason when output was lost for a reason worth telling
        (a closed pipe is the reader's choice, not a problem)."""
        if self.error is None or self.error.errno == errno.EPIPE:
            return None
        return f"cannot write the output: {self.error.strerror or self.error}"


class ProgramConsole(Console):
    """A console that also keeps what the program printed, in order, byte
    for byte (``program``: its first ``keep`` bytes; ``program_dropped``
    counts the rest), and can echo only that (``program_stream``) while
    ``stream`` (the kernel's lines and the program's) stays None."""

    def __init__(self, stream: GuardedStdout | None = None,
                 program_stream: GuardedStdout | None = None, *,
                 keep: int = DEFAULT_KEEP) -> None:
        super().__init__(stream, keep=keep)  # type: ignore[arg-type]
        self.program = bytearray()
        self.program_dropped = 0
        self._program_room = keep
        self._program_stream = program_stream

    def write_bytes(self, data: bytes) -> None:
        kept = data[:self._program_room]
        self.program += kept
        self._program_room -= len(kept)
        self.program_dropped += len(data) - len(kept)
        if self._program_stream is not None:
            self._program_stream.write_bytes(data)
        super().write_bytes(data)
