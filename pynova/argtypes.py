"""Command-line argument types of pynova's commands (``pynova run``,
``pynova lab``): each refuses with the one-line reason argparse shows
(``argument --mem: not a memory size: 'x'``, status 2)."""

from __future__ import annotations

import argparse
import math


def parse_size(text: str) -> int:
    """'128', '128M', '64MiB', '1G', '512K' -> bytes (a plain number is
    MiB, as ``pynova run --mem`` reads it). Raises ValueError."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    scale = 1 << 20
    if t and t[-1] in "KMG":
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[t[-1]]
        t = t[:-1]
    try:
        value = int(float(t) * scale)
    except (ValueError, OverflowError):
        raise ValueError(f"not a memory size: {text!r}") from None
    if value <= 0:
        raise ValueError(f"not a memory size: {text!r}")
    return value


def memory_size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def positive_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def seconds(text: str) -> float:
    """A time limit: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds above 0: {text!r}")
    return value


def port_number(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {text!r}")
    return value
