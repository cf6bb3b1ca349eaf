"""Resume requests: ``vCont`` action lists and thread-id fields."""

from __future__ import annotations

from dataclasses import dataclass

from pynova.tools.gdbstub.hexutil import parse_hex_int

_ACTIONS = frozenset("cCsS")


@dataclass(frozen=True)
class Resume:
    """One all-stop resume: step one thread or continue all.

    ``thread`` None means the session's default thread (the one gdb
    selected with ``Hc``, else the one that stopped).
    """

    step: bool
    thread: int | None = None
    signal: int = 0


def parse_thread_id(text: str) -> int:
    """A thread-id field: ``-1`` (all), ``0`` (any) or a positive hex id."""
    if text == "-1":
        return -1
    if text.startswith("p"):
        raise ValueError("multiprocess thread ids are not enabled")
    return parse_hex_int(text)


def _parse_action(text: str) -> tuple[str, int, int | None]:
    """``c``, ``C05``, ``s:1``, ``S0b:2`` -> (letter, signal, thread)."""
    head, sep, thread = text.partition(":")
    letter, sig = head[:1], head[1:]
    if letter not in _ACTIONS or (letter in "cs") == bool(sig):
        raise ValueError(f"unsupported vCont action {text!r}")
    tid = parse_thread_id(thread) if sep else None
    return letter, parse_hex_int(sig) if sig else 0, tid if tid and tid > 0 else None


def parse_vcont(actions: str, default_thread: int) -> Resume:
    """Reduce a ``vCont;`` action list to one all-stop :class:`Resume`.

    The first step action wins (its thread steps, or ``default_thread``);
    otherwise the first continue action gives the signal. Actions for
    other threads are implied: in all-stop mode everything else runs.
    """
    parsed = [_parse_action(part) for part in actions.split(";")]
    for letter, sig, thread in parsed:
        if letter in "sS":
            return Resume(step=True, thread=thread or default_thread, signal=sig)
    return Resume(step=False, signal=parsed[0][1])
