"""Helpers of the lab framework's tests: the test lab "toy" (tests/lab_fixture/)
and workspaces of typical submissions made from its generated solution."""

from __future__ import annotations

import sys
from pathlib import Path

from pynova.labs import registry, workspace
from pynova.labs.lab import Lab

FIXTURE = Path(__file__).resolve().parent / "lab_fixture"
TOYLAB = FIXTURE / "toylab.py"
TOY_SOURCE = FIXTURE / "toy_source.py"
HIDDEN = FIXTURE / "hidden"
STUDENT_FILE = "toy_lab.py"

SOLVED_COUNT = "    count = 0\n"
SOLVED_GREETING = '    return f"toy: starting {program}"\n'

#: Typical submissions: (text of the solution to replace, replacement).
VARIANTS = {
    # step 1 counts one header too few
    "buggy": ("for i in range(phnum):", "for i in range(phnum - 1):"),
    # step 2 never returns (and so neither does any run, whose kernel greets)
    "hang": (SOLVED_GREETING, "    while True:\n        pass\n"),
    # step 1 raises inside pynova's code, called from the student's
    "raises": (SOLVED_COUNT, "    count = 0\n    parse_size('many')\n"),
    # step 1 allocates without end
    "hog": (SOLVED_COUNT, "    hog = []\n    while True:\n"
                          "        hog.append(bytearray(64 << 20))\n"),
    # step 1 ends the process
    "exits": (SOLVED_COUNT, "    print('leaving now')\n    os._exit(3)\n"),
    "killed": (SOLVED_COUNT, "    os.kill(os.getpid(), signal.SIGKILL)\n"),
    # the module does not import
    "syntax": ("PT_LOAD = 1", "PT_LOAD = = 1"),
    "import_error": ("import struct\n", "import struct\nimport no_such_module_here\n"),
    "import_raises": ("import struct\n", "import struct\n\nraise RuntimeError('at import')\n"),
    "import_hangs": ("import struct\n", "import struct\n\nwhile True:\n    pass\n"),
}

#: What every variant imports in addition (the solution does not need it).
PRELUDE = ("import struct\n", "import os\nimport signal\nimport struct\n\n"
           "from pynova.argtypes import parse_size\n")


def toy_lab() -> Lab:
    return registry.load_file(TOYLAB)


def solution(root: Path, name: str = "solution") -> Path:
    path = root / name
    workspace.start(toy_lab(), path, solution=True)
    return path


def skeleton(root: Path, name: str = "skeleton") -> Path:
    path = root / name
    workspace.start(toy_lab(), path, solution=False)
    return path


def variant(root: Path, kind: str, name: str | None = None) -> Path:
    """A workspace whose student file is the solution with one typical bug."""
    path = solution(root, name or kind)
    file = path / STUDENT_FILE
    text = file.read_text().replace(*PRELUDE, 1)
    old, new = VARIANTS[kind]
    assert old in text, (kind, old)
    file.write_text(text.replace(old, new, 1))
    return path


def pynova(*args: str, timeout: float = 120) -> tuple[int, str, str]:
    import subprocess
    proc = subprocess.run([sys.executable, "-m", "pynova", *args], capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def wait_gone(pid: int, seconds: float = 5.0) -> bool:
    """True once ``pid`` has ended (a zombie waiting for init counts)."""
    import time
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.01)
    return False


# ------------------------------------------------------ pynova's own labs
def lab_workspace(root: Path, lab: str, name: str, edits: tuple[tuple[str, str], ...] = (),
                  *, solution: bool = True) -> Path:
    """A workspace of the registered lab ``lab``: its generated solution (or
    skeleton) with each (old, new) edit made once, as a student would."""
    path = root / name
    spec = registry.find(lab)
    workspace.start(spec, path, solution=solution)
    file = path / spec.files[0].name
    text = file.read_text()
    for old, new in edits:
        assert old in text, (name, old)
        text = text.replace(old, new, 1)
    file.write_text(text)
    return path


def checked(path: Path):  # type: ignore[no-untyped-def]
    """{check name: CheckResult} of a workspace, and the report."""
    from pynova.labs.checks import run_checks
    lab, ws = workspace.open_workspace(path)
    report = run_checks(lab, ws)
    return {c.name: c for c in report.checks}, report


def assert_all_pass(path: Path, score: int) -> list[str]:
    """Every check of the workspace passes, for ``score`` points; returns
    the checks' names in order."""
    results, report = checked(path)
    assert report.passed, {n: r.message for n, r in results.items() if not r.passed}
    assert report.score == report.max_score == score
    return [c.name for c in report.checks]


def assert_caught(path: Path, caught: dict[str, list[str]]) -> None:
    """The workspace fails each check in ``caught`` with every one of its
    texts in the message, said as expected / got / why (or as the
    student's own traceback, when their code raised)."""
    results, report = checked(path)
    assert not report.passed
    for check, words in caught.items():
        result = results[check]
        assert not result.passed, check
        for text in words:
            assert text in result.message, (text, result.message)
        if not result.message.startswith("your code raised"):
            heads = [line[:10] for line in result.message.splitlines()]
            assert heads[0] == "expected: " and "got:      " in heads and "why:      " in heads
