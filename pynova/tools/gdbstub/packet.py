"""Framing of the GDB remote serial protocol: ``$data#cs`` packets.

Everything here works on ``bytes`` and has no state beyond one
:class:`PacketReader`. References: the GDB manual, appendix "GDB Remote
Serial Protocol", section "Overview" (checksums, escaping, run-length
encoding, acknowledgments, the 0x03 interrupt).
"""

from __future__ import annotations

from dataclasses import dataclass

ESCAPE = 0x7D  # '}'
ESCAPE_XOR = 0x20
MUST_ESCAPE = frozenset(b"$#}*")
INTERRUPT = 0x03
RLE_MARK = 0x2A  # '*'
RLE_BASE = 29  # a count character c means ord(c) - 29 more repeats
RLE_MIN_EXTRA = 3  # ' ' (32): shorter runs are not worth three characters
RLE_MAX_EXTRA = 126 - RLE_BASE  # '~'
RLE_FORBIDDEN_EXTRA = frozenset({ord("#") - RLE_BASE, ord("$") - RLE_BASE})

#: Largest packet body the reader accepts; longer input is dropped and nacked.
MAX_PACKET_DATA = 1 << 20


class PacketError(ValueError):
    """Raised by the pure helpers on data that cannot be decoded."""


def checksum(data: bytes) -> int:
    """The modulo-256 sum of the bytes between ``$`` and ``#``."""
    return sum(data) & 0xFF


def escape(data: bytes) -> bytes:
    """Escape ``$ # } *`` as ``}`` followed by the byte xor 0x20."""
    out = bytearray()
    for byte in data:
        if byte in MUST_ESCAPE:
            out += bytes((ESCAPE, byte ^ ESCAPE_XOR))
        else:
            out.append(byte)
    return bytes(out)


def unescape(data: bytes) -> bytes:
    """Undo :func:`escape` (for binary payloads such as ``X``)."""
    out = bytearray()
    pending = False
    for byte in data:
        if pending:
            out.append(byte ^ ESCAPE_XOR)
            pending = False
        elif byte == ESCAPE:
            pending = True
        else:
            out.append(byte)
    if pending:
        raise PacketError("escape character at end of data")
    return bytes(out)


def rle_decode(data: bytes) -> bytes:
    """Expand ``c*N`` runs (``N`` = repeat count + 29) in received data.

    A ``*`` that directly follows a ``}`` escape is an escaped byte's
    partner, never a run marker, so escapes are skipped over.
    """
    out = bytearray()
    i = 0
    while i < len(data):
        byte = data[i]
        if byte == ESCAPE and i + 1 < len(data):
            out += data[i : i + 2]
            i += 2
        elif byte == RLE_MARK:
            i += 1
            out += _expand_run(out, data, i)
            i += 1
        else:
            out.append(byte)
            i += 1
    return bytes(out)


def _expand_run(out: bytearray, data: bytes, i: int) -> bytes:
    if not out or i >= len(data):
        raise PacketError("run-length marker without a character or count")
    extra = data[i] - RLE_BASE
    if extra < 0:
        raise PacketError(f"bad run-length count {data[i]:#x}")
    return bytes((out[-1],)) * extra


def rle_encode(data: bytes) -> bytes:
    """Run-length encode ``data`` (already escaped) where the manual allows.

    Runs are encoded only when the count character is printable and not
    ``#`` or ``$``; runs of 7 or 8 use a count of 5 plus literal bytes. A
    ``}`` escape pair is copied as is so that its second byte never starts a
    run that the receiver would read as part of the escape.
    """
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i] == ESCAPE and i + 1 < len(data):
            out += data[i : i + 2]
            i += 2
            continue
        run = _run_length(data, i)
        out += _encode_run(data[i], run - 1)
        i += run
    return bytes(out)


def _run_length(data: bytes, start: int) -> int:
    end = start + 1
    while end < len(data) and data[end] == data[start] and end - start <= RLE_MAX_EXTRA:
        end += 1
    return end - start


def _encode_run(byte: int, extra: int) -> bytes:
    """One character plus ``extra`` repeats of it, encoded."""
    out = bytearray((byte,))
    while extra >= RLE_MIN_EXTRA:
        count = min(extra, RLE_MAX_EXTRA)
        if count in RLE_FORBIDDEN_EXTRA:
            count = min(RLE_FORBIDDEN_EXTRA) - 1
        out += bytes((RLE_MARK, count + RLE_BASE))
        extra -= count
    out += bytes((byte,)) * extra
    return bytes(out)


def frame(data: bytes, *, rle: bool = False) -> bytes:
    """Frame a reply body: ``$`` + body + ``#`` + two hex checksum digits.

    ``data`` must already be escaped where the packet carries binary data;
    ``rle`` run-length encodes it first.
    """
    body = rle_encode(data) if rle else data
    return b"$" + body + b"#" + b"%02x" % checksum(body)


@dataclass(frozen=True)
class Packet:
    """A complete packet with a correct checksum; ``data`` is RLE-expanded."""

    data: bytes


@dataclass(frozen=True)
class BadPacket:
    """A packet whose checksum or framing was wrong; answer with ``-``."""

    reason: str


@dataclass(frozen=True)
class Interrupt:
    """The 0x03 byte the client sends for Ctrl-C, outside any packet."""


@dataclass(frozen=True)
class Ack:
    """A ``+`` from the client: the last reply arrived."""


@dataclass(frozen=True)
class Nack:
    """A ``-`` from the client: send the last reply again."""


Event = Packet | BadPacket | Interrupt | Ack | Nack

_IDLE, _DATA, _CSUM = range(3)
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


class PacketReader:
    """Turns a byte stream, fed in arbitrary pieces, into :data:`Event` s."""

    def __init__(self, max_data: int = MAX_PACKET_DATA) -> None:
        self._max_data = max_data
        self._state = _IDLE
        self._data = bytearray()
        self._csum = bytearray()
        self._events: list[Event] = []

    def feed(self, chunk: bytes) -> list[Event]:
        """Consume ``chunk`` and return the events it completed, in order."""
        for byte in chunk:
            self._step(byte)
        events, self._events = self._events, []
        return events

    def _step(self, byte: int) -> None:
        if self._state == _IDLE:
            self._idle(byte)
        elif self._state == _DATA:
            self._in_data(byte)
        else:
            self._in_checksum(byte)

    def _idle(self, byte: int) -> None:
        simple: dict[int, Event] = {ord("+"): Ack(), ord("-"): Nack(), INTERRUPT: Interrupt()}
        if byte == ord("$"):
            self._start()
        elif byte in simple:
            self._events.append(simple[byte])
        # anything else between packets is line noise and ignored

    def _start(self) -> None:
        self._state = _DATA
        self._data.clear()
        self._csum.clear()

    def _in_data(self, byte: int) -> None:
        if byte == ord("#"):
            self._state = _CSUM
        elif byte == ord("$"):
            self._events.append(BadPacket("packet restarted by '$'"))
            self._start()
        elif len(self._data) >= self._max_data:
            self._events.append(BadPacket("packet too long"))
            self._state = _IDLE
        else:
            self._data.append(byte)

    def _in_checksum(self, byte: int) -> None:
        self._csum.append(byte)
        if len(self._csum) == 2:
            self._state = _IDLE
            self._events.append(self._finish(bytes(self._data), bytes(self._csum)))

    @staticmethod
    def _finish(data: bytes, digits: bytes) -> Event:
        if not all(d in _HEX_DIGITS for d in digits):
            return BadPacket(f"checksum digits {digits!r} are not hex")
        expected = int(digits, 16)
        if checksum(data) != expected:
            return BadPacket(f"checksum {expected:02x} != {checksum(data):02x}")
        try:
            return Packet(rle_decode(data))
        except PacketError as err:
            return BadPacket(str(err))
