"""The hidden-check examples of docs/labs/<lab>.md run as they are: with
pynova's solution they pass, with a typical bug they fail and show the
teacher's why. (Lab malloc's is tested in test_lab_malloc.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from pynova.labs import hidden, workspace
from pynova.labs.checks import run_checks

from conftest import needs_toolchain
from labkit import lab_workspace

pytestmark = needs_toolchain

DOCS = Path(__file__).resolve().parent.parent / "docs" / "labs"

#: lab: (the check's name, a typical bug that fails it: (old, new) in the solution)
EXAMPLES = {
    "elf": ("hidden: .data is writable and a big .bss reads as zero",
            ("k.insert_mappings(run.virt, k.frames(run), run.attr)",
             "k.insert_mappings(run.virt, k.frames(run), run.attr & ~RW)")),
    "ptab": ("hidden: a store into the code faults",
             ("pt.write(pte_addr, phys | (attr & ATTR_MASK))",
              "pt.write(pte_addr, phys | (attr & ATTR_MASK) | RW)")),
    "brk": ("hidden: a failed grow gives back what it took",
            ("    except OutOfMemory:\n        shrink(heap, old, page)\n        return False",
             "    except OutOfMemory:\n        return False")),
    "threads": ("hidden: a thread's own thread runs right after it",
                ("    threads.ready.insert(1, threads.new_thread(eip, stack_top))",
                 "    threads.ready.append(threads.new_thread(eip, stack_top))")),
}


def doc_blocks(lab: str) -> tuple[str, str, str]:
    """The TOML, its file name and the C program of the page's example."""
    section = (DOCS / f"{lab}.md").read_text().split("### A hidden check for this lab")[1]
    toml = section.split("```toml\n")[1].split("```")[0]
    c = section.split("```c\n")[1].split("```")[0]
    return toml, toml.splitlines()[0].removeprefix("# "), c


@pytest.mark.parametrize("lab", sorted(EXAMPLES))
def test_the_docs_hidden_check_passes_for_the_solution_and_catches_a_bug(tmp_path, lab):
    name, bug = EXAMPLES[lab]
    toml, file_name, c = doc_blocks(lab)
    folder = tmp_path / "hidden"
    folder.mkdir()
    (folder / file_name).write_text(toml)
    program = next(line.split('"')[1] for line in toml.splitlines()
                   if line.startswith("program"))
    (folder / program).write_text(c)
    for path, passes in ((lab_workspace(tmp_path, lab, "good"), True),
                         (lab_workspace(tmp_path, lab, "bad", (bug,)), False)):
        spec, ws = workspace.open_workspace(path)
        checks = hidden.prepare(hidden.load_dir(folder, lab), spec)
        assert [c.name for c in checks] == [name]
        report = run_checks(spec, ws, checks)
        result = report.checks[0]
        assert result.passed is passes, result.message
        if not passes:
            why = next(line for line in toml.splitlines() if line.startswith("why = "))
            assert f"why:      {why[7:-1]}" in result.message
