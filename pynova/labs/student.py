"""The student's code: imported by file path, and its tracebacks.

A workspace file is imported under a fresh module name of its own
(``_pynova_student_<lab>_<stem>_<random>``); the workspace directory never
goes on sys.path and no module of pynova is replaced. When the student's
code raises, the student sees their own traceback: the frames in their
files, the exception, and where in pynova it finally raised. That is the
one place pynova shows a traceback.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from pynova.labs.lab import StudentCodeError

#: Frames kept at each end of a very deep student traceback (recursion).
EDGE_FRAMES = 8


class NotPythonSource(Exception):
    """A file that importlib cannot load as Python source."""


def load_module(path: Path, name: str) -> ModuleType:
    """Run the Python file ``path`` as a new module ``name``, registered in
    sys.modules so that dataclasses, typing and pickle find it while it runs
    (no other entry is touched). Whatever it raises at import comes out,
    and the module is not registered then."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise NotPythonSource(f"{path.name}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def import_file(path: Path, lab: str, root: Path) -> ModuleType:
    """Import the Python file ``path`` as a new module. A syntax error, an
    import error or any exception at import is a StudentCodeError showing
    the student's traceback (paths relative to ``root``)."""
    name = f"_pynova_student_{lab}_{_identifier(path.stem)}_{uuid.uuid4().hex[:12]}"
    try:
        return load_module(path, name)
    except NotPythonSource:
        raise StudentCodeError(f"cannot import {path.name}: not a Python source file") from None
    except BaseException as exc:  # noqa: B036 - SystemExit at import is the student's too
        text = student_traceback(exc, [path], root) or one_line(exc)
        raise StudentCodeError(f"{path.name} does not import:\n{text}") from None


def _identifier(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def _is_student(filename: str, files: set[str]) -> bool:
    return os.path.realpath(filename) in files


def student_traceback(exc: BaseException, files: Sequence[Path], root: Path) -> str | None:
    """The traceback of ``exc`` trimmed to the frames in ``files`` (shown
    relative to ``root``), with the exception line; None when no frame of
    the student's files is involved (not even a SyntaxError in one)."""
    real = {os.path.realpath(f) for f in files}
    frames = [fs for fs in traceback.extract_tb(exc.__traceback__)]
    mine = [i for i, fs in enumerate(frames) if _is_student(fs.filename, real)]
    syntax = isinstance(exc, SyntaxError) and exc.filename is not None \
        and _is_student(exc.filename, real)
    if not mine and not syntax:
        return None
    lines = ["Traceback (your code; pynova's frames left out):\n"] if mine else []
    shown = [_relative(frames[i], root) for i in mine]
    if len(shown) > 2 * EDGE_FRAMES:
        skipped = len(shown) - 2 * EDGE_FRAMES
        lines += traceback.StackSummary.from_list(shown[:EDGE_FRAMES]).format()
        lines.append(f"  ... {skipped} more frames of your code ...\n")
        lines += traceback.StackSummary.from_list(shown[-EDGE_FRAMES:]).format()
    else:
        lines += traceback.StackSummary.from_list(shown).format()
    if mine and mine[-1] != len(frames) - 1:
        last = frames[-1]
        lines.append(f"  (raised inside pynova: {_short(last.filename)}:{last.lineno}, "
                     f"in {last.name})\n")
    if syntax:
        assert isinstance(exc, SyntaxError)
        exc = _relative_syntax_error(exc, root)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines).rstrip("\n")


def _relative(fs: traceback.FrameSummary, root: Path) -> traceback.FrameSummary:
    return traceback.FrameSummary(_display(fs.filename, root), fs.lineno, fs.name,
                                  line=fs.line)


def _relative_syntax_error(exc: SyntaxError, root: Path) -> SyntaxError:
    copy = SyntaxError(exc.msg, (_display(exc.filename or "", root), exc.lineno,
                                 exc.offset, exc.text, exc.end_lineno, exc.end_offset))
    return copy if type(exc) is SyntaxError else _retype(exc, copy)


def _retype(exc: SyntaxError, copy: SyntaxError) -> SyntaxError:
    """IndentationError and TabError keep their class."""
    try:
        return type(exc)(copy.msg, (copy.filename, copy.lineno, copy.offset, copy.text,
                                    copy.end_lineno, copy.end_offset))
    except TypeError:
        return copy


def _display(filename: str, root: Path) -> str:
    try:
        return os.path.relpath(os.path.realpath(filename), os.path.realpath(root))
    except ValueError:
        return filename


def _short(filename: str) -> str:
    """A pynova source path from the package on (pynova/kernel/ptab.py)."""
    parts = Path(filename).parts
    if "pynova" in parts:
        return "/".join(parts[len(parts) - 1 - parts[::-1].index("pynova"):])
    return filename


def one_line(exc: BaseException) -> str:
    """``ExcType: message`` and where it was raised (file:line)."""
    text = traceback.format_exception_only(type(exc), exc)[-1].strip()
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        text += f" (at {_short(last.filename)}:{last.lineno}, in {last.name})"
    return text
