"""The user programs of the labs' own checks.

Bundled examples (``pynova examples``) are found by name; the others are
C sources in ``pynova/labs/programs/``, each linked with the linker script
of the same name when there is one (a layout the seed's linker.ld does not
make). They are built once into ``~/.cache/pynova/lab-programs/`` (or
``$PYNOVA_BUILD_DIR/lab-programs/``), keyed by their sources, pynova's user
files and the toolchain; a lab's ``prepare`` hook builds them before its
checks' processes start, so that no check's time limit pays for a compiler.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

PROGRAMS_DIR = Path(__file__).resolve().parent / "programs"


class ProgramError(Exception):
    """A check's program could not be built (one line)."""


def program_path(name: str) -> Path:
    """The built program ``name``: a bundled example, or a source of
    pynova/labs/programs/ (built if needed)."""
    from pynova import toolchain

    source = PROGRAMS_DIR / f"{name}.c"
    try:
        if not source.is_file():
            return toolchain.example_path(name)
        tc = toolchain.find_toolchain()
        script = source.with_suffix(".ld")
        scripts = [script] if script.is_file() else []
        target = _cache_dir() / f"{name}-{_key([source, *scripts], tc.identity())}"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            toolchain.build_program([source], target, toolchain=tc,
                                    linker_script=scripts[0] if scripts else None,
                                    warn=lambda _text: None)
        return target
    except (toolchain.ToolchainError, toolchain.UnknownExample, OSError) as err:
        first = (str(err).splitlines() or ["build failed"])[0]
        raise ProgramError(f"cannot build the check program {name}: {first}") from None


def image(name: str) -> bytes:
    """The bytes of program ``name``."""
    try:
        return program_path(name).read_bytes()
    except OSError as err:
        raise ProgramError(f"cannot read the check program {name}: "
                           f"{err.strerror or err}") from None


def build(names: Iterable[str]) -> None:
    """Build the programs ``names`` now (a lab's ``prepare``); a failure
    is left for the check that needs the program to report."""
    for name in names:
        try:
            program_path(name)
        except ProgramError:
            pass


def _cache_dir() -> Path:
    from pynova.toolchain import BUILD_DIR_ENV

    env = os.environ.get(BUILD_DIR_ENV)
    return (Path(env) if env else Path.home() / ".cache" / "pynova") / "lab-programs"


def _key(files: list[Path], identity: str) -> str:
    """A key of the program's files, pynova's user files and the toolchain."""
    from pynova.toolchain import CFLAGS, USER_DIR

    h = hashlib.sha256(identity.encode() + b"\0" + " ".join(CFLAGS).encode())
    for path in files:
        h.update(b"\0" + path.name.encode() + b"\0" + path.read_bytes())
    for folder, dirs, names in sorted(os.walk(USER_DIR)):
        dirs[:] = sorted(d for d in dirs if d not in ("examples", "__pycache__"))
        for name in sorted(names):
            h.update(b"\0" + name.encode() + b"\0" + Path(folder, name).read_bytes())
    return h.hexdigest()[:16]
