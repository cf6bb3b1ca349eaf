"""The labs pynova ships: one module per lab, each defining ``LAB``.

A new lab adds its module's name to ``LAB_MODULES`` (in course order).
A lab may also live outside pynova, in a Python file that defines ``LAB``
(a course's own lab, or a test's): wherever a lab's name is asked for,
the path of such a file (ending in ``.py``) is accepted too.
"""

from __future__ import annotations

import importlib
import uuid
from dataclasses import replace
from pathlib import Path

from pynova.labs.lab import Lab
from pynova.labs.student import NotPythonSource, load_module

LAB_MODULES: tuple[str, ...] = ("pynova.labs.elf", "pynova.labs.ptab", "pynova.labs.brk",
                                 "pynova.labs.malloc", "pynova.labs.threads")


class UnknownLab(Exception):
    """No lab has this name (a one-line reason)."""


def registered() -> list[Lab]:
    """Every lab pynova ships, in course order."""
    return [_lab_of(importlib.import_module(name), name) for name in LAB_MODULES]


def _lab_of(module: object, where: str) -> Lab:
    lab = getattr(module, "LAB", None)
    if not isinstance(lab, Lab):
        raise UnknownLab(f"{where} defines no LAB = Lab(...)")
    return lab


def find(spec: str) -> Lab:
    """The lab named ``spec``, or defined in the Python file ``spec``."""
    if spec.endswith(".py"):
        return load_file(Path(spec))
    for lab in registered():
        if lab.name == spec:
            return lab
    names = ", ".join(lab.name for lab in registered()) or "none yet"
    raise UnknownLab(f"no lab named {spec!r} (labs: {names})")


def load_file(path: Path) -> Lab:
    """The ``LAB`` of a lab file outside pynova, imported under a fresh
    module name (the file's directory does not go on sys.path)."""
    path = path.resolve()
    if not path.is_file():
        raise UnknownLab(f"{path}: no such lab file")
    try:
        module = load_module(path, f"_pynova_lab_{uuid.uuid4().hex[:12]}")
    except NotPythonSource:
        raise UnknownLab(f"{path}: not a Python file") from None
    except Exception as err:
        raise UnknownLab(f"{path}: cannot load the lab: {type(err).__name__}: {err}") from None
    return replace(_lab_of(module, str(path)), origin=path)
