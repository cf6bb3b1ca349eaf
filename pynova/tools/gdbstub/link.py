"""The acknowledgment layer: ``+``/``-``, retransmission, QStartNoAckMode.

A :class:`Link` sits between a byte transport (given as a ``write``
callable) and the packet dispatcher. It may be used from two threads, one
feeding received bytes and one sending replies, so its state is guarded by
a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pynova.tools.gdbstub.packet import (
    BadPacket,
    Event,
    Interrupt,
    Nack,
    Packet,
    PacketReader,
    frame,
)

Incoming = Packet | Interrupt


class Link:
    """Acknowledges packets, resends on ``-``, and frames outgoing replies."""

    def __init__(self, write: Callable[[bytes], None], *, rle: bool = False) -> None:
        self._write = write
        self._rle = rle
        self._reader = PacketReader()
        self._lock = threading.Lock()
        self._ack_mode = True
        self._last_sent: bytes | None = None

    @property
    def ack_mode(self) -> bool:
        """Whether ``+``/``-`` are still exchanged (until QStartNoAckMode)."""
        return self._ack_mode

    def receive(self, chunk: bytes) -> list[Incoming]:
        """Feed received bytes; answer acks here, return packets/interrupts."""
        with self._lock:
            return [item for ev in self._reader.feed(chunk) if (item := self._handle(ev))]

    def _handle(self, event: Event) -> Incoming | None:
        if isinstance(event, Packet):
            self._send_ack(b"+")
            return event
        if isinstance(event, BadPacket):
            self._send_ack(b"-")
        elif isinstance(event, Nack) and self._ack_mode and self._last_sent:
            self._write(self._last_sent)
        elif isinstance(event, Interrupt):
            return event
        # Ack: nothing to do; the reply is considered delivered.
        return None

    def _send_ack(self, byte: bytes) -> None:
        if self._ack_mode:
            self._write(byte)

    def send(self, data: bytes, *, no_ack_after: bool = False) -> None:
        """Frame and send one reply body (already escaped where binary).

        ``no_ack_after`` turns acknowledgments off once this reply is out,
        as the answer to ``QStartNoAckMode`` requires.
        """
        with self._lock:
            packet = frame(data, rle=self._rle)
            self._last_sent = packet if self._ack_mode else None
            self._write(packet)
            if no_ack_after:
                self._ack_mode = False
