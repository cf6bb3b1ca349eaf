"""Hex text as the remote protocol writes numbers and byte blocks."""

from __future__ import annotations

_HEX = frozenset("0123456789abcdefABCDEF")


class HexError(ValueError):
    """A field that should be hex is empty, odd-length or not hex."""


def to_hex(data: bytes) -> str:
    """Bytes as lowercase hex digits, two per byte."""
    return data.hex()


def from_hex(text: str) -> bytes:
    """Two hex digits per byte; anything else raises :class:`HexError`."""
    if len(text) % 2 or not _HEX.issuperset(text):
        raise HexError(f"not a hex byte string: {text[:40]!r}")
    return bytes.fromhex(text)


def parse_hex_int(text: str) -> int:
    """A non-negative number written in hex (addresses, lengths, kinds)."""
    if not text or not _HEX.issuperset(text):
        raise HexError(f"not a hex number: {text[:40]!r}")
    return int(text, 16)
