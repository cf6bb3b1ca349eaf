"""The serial console: the one place where the kernel's output goes."""

from __future__ import annotations

import collections
import sys
from typing import TextIO

#: Characters of output a console keeps by default (the Python API's
#: ``max_output``); a program printing in a loop must not fill the host.
DEFAULT_KEEP = 16 << 20
#: Of what it keeps, a console reserves up to this much for the end of the
#: output, so the kernel's last lines (a fault report, a limit) survive.
TAIL_KEEP = 64 << 10


class Console:
    """A serial line. It keeps what is written, up to ``keep`` characters
    (tests and the Python API read it back): the beginning, and the last
    ``TAIL_KEEP`` of them; ``dropped`` counts what it left out in between.
    Given a stream, it echoes everything there as it comes (``keep=0``
    then makes it a pure stream, as for ``pynova run``)."""

    def __init__(self, stream: TextIO | None = None, *, keep: int = DEFAULT_KEEP) -> None:
        if keep < 0:
            raise ValueError(f"the output to keep must be at least 0 characters, not {keep}")
        self._stream = stream
        self._tail_room = min(TAIL_KEEP, keep // 2)
        self._head_room = keep - self._tail_room
        self._head: list[str] = []
        self._tail: collections.deque[str] = collections.deque()
        self._tail_len = 0
        self.dropped = 0

    @classmethod
    def stdout(cls) -> Console:
        return cls(sys.stdout, keep=0)

    def write(self, text: str) -> None:
        if self._stream is not None:
            self._stream.write(text)
            self._stream.flush()
        if self._head_room:
            kept = text[:self._head_room]
            self._head.append(kept)
            self._head_room -= len(kept)
            text = text[len(kept):]
        if text:
            self._keep_tail(text)

    def _keep_tail(self, text: str) -> None:
        self._tail.append(text)
        self._tail_len += len(text)
        excess = self._tail_len - self._tail_room
        while excess > 0:
            first = self._tail[0]
            cut = min(excess, len(first))
            if cut == len(first):
                self._tail.popleft()
            else:
                self._tail[0] = first[cut:]
            self._tail_len -= cut
            self.dropped += cut
            excess -= cut

    def write_bytes(self, data: bytes) -> None:
        self.write(data.decode("latin-1"))

    def line(self, text: str = "") -> None:
        self.write(text + "\n")

    @property
    def output(self) -> str:
        """What was kept; a note marks where output was left out."""
        head, tail = "".join(self._head), "".join(self._tail)
        if not self.dropped:
            return head + tail
        return f"{head}\n[pynova: {self.dropped} characters of output left out]\n{tail}"
