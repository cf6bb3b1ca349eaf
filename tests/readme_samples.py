"""The README's sample outputs, made by running the commands they show.

A sample is a fenced block right after a line ``<!-- sample: COMPILER -->``;
its first line is ``$ pynova ...`` and the rest is what that command printed
(stdout and stderr, in order). ``python tests/readme_samples.py`` (``make
readme``) runs every command again and rewrites the blocks, noting the
compiler the user programs were built with; ``tests/test_readme.py`` checks
that the README still says what pynova prints. Addresses and sizes depend on
the code the compiler made, so under another compiler only the words are
compared (numbers are masked); the banner's Python and Unicorn versions are
masked always.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

README = Path(__file__).resolve().parents[1] / "README.md"
SAMPLE = re.compile(r"<!-- sample(?:: (?P<compiler>[^>]*?))? -->\n"
                    r"```(?P<lang>\w*)\n\$ (?P<command>[^\n]+)\n(?P<output>.*?)```", re.S)
BANNER_VERSIONS = re.compile(r"\[Python [^,\]]+, Unicorn [^\]]+\]")
NUMBERS = re.compile(r"\b(0x[0-9a-f]+|[0-9a-f]*[0-9][0-9a-f]*)\b")


class Sample(NamedTuple):
    compiler: str
    command: str
    output: str


def samples(text: str) -> list[Sample]:
    return [Sample(m["compiler"] or "", m["command"], m["output"])
            for m in SAMPLE.finditer(text)]


def compiler() -> str:
    """The first line of ``--version`` of the compiler that builds the examples."""
    from pynova.toolchain import find_toolchain

    cc = find_toolchain().cc
    out = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0].strip() if out.stdout else Path(cc).name


def run(command: str) -> str:
    """What ``command`` (``pynova ...``) prints, run in an empty directory so
    that no file there can stand in for a bundled example."""
    words = shlex.split(command)
    assert words[0] == "pynova", command
    with tempfile.TemporaryDirectory(prefix="pynova-readme-") as folder:
        done = subprocess.run([sys.executable, "-m", "pynova", *words[1:]], cwd=folder,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=120, check=False)
    return done.stdout


def normalized(text: str, loose: bool) -> str:
    text = BANNER_VERSIONS.sub("[Python *, Unicorn *]", text)
    return NUMBERS.sub("#", text) if loose else text


def render(text: str) -> str:
    """The README with every sample's output made afresh."""
    here = compiler()

    def fresh(m: re.Match[str]) -> str:
        return (f"<!-- sample: {here} -->\n```{m['lang']}\n$ {m['command']}\n"
                f"{run(m['command'])}```")
    return SAMPLE.sub(fresh, text)


def main() -> int:
    old = README.read_text()
    new = render(old)
    if new != old:
        README.write_text(new)
    print(f"{README.name}: {len(samples(new))} samples "
          f"{'rewritten' if new != old else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(README.parent))
    sys.exit(main())
