"""Lab malloc: the untouched skeleton fails every check cleanly, pynova's
solution passes them all, and typical student bugs (small edits of the
generated solution) fail the check that should catch them, with the cause
named. Also: a file that does not compile or link, an endless loop, the
libc replacement in the toolchain and the cache key behind it, the docs'
examples."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from pynova import toolchain
from pynova.labs import workspace
from pynova.labs.checks import CheckLimits, LabReport, run_checks
from pynova.labs.cprogram import compile_alone
from pynova.labs.malloc import CHECKS_DIR, LAB, STUDENT_FILE

from conftest import needs_toolchain

pytestmark = needs_toolchain

DOC = Path(__file__).resolve().parent.parent / "docs" / "labs" / "malloc.md"
NAMES = [c.name for c in LAB.checks]
BASIC, ALIGN, OVERLAP, REUSE, COALESCE, TRIM, SIZES, OOM, STRESS = NAMES

#: Typical bugs: (text of the generated solution, what the student wrote).
BUGS = {
    # split writes the new size into the footer only: the header keeps the whole
    "split_header": ("    set_block(b, size, USED);\n    set_block(b + size, rest, 0);",
                     "    *(word *)(b + size - 4) = size | USED;\n"
                     "    set_block(b + size, rest, 0);"),
    # split does not shrink the block it hands out at all
    "split_size": ("    set_block(b, size, USED);\n    set_block(b + size, rest, 0);",
                   "    set_block(b + size, rest, 0);"),
    # free does nothing
    "no_reuse": ("    set_block(b, bsize(b), 0);\n    b = coalesce(b);\n    list_push(b);\n"
                 "    trim(b);\n", ""),
    # malloc never looks at the free list
    "no_search": ("        if (bsize(block_of_links(l)) >= size)\n"
                  "            return block_of_links(l);\n", ""),
    # sizes not rounded up to a multiple of 8
    "unaligned": ("    word size = ((word)n + OVERHEAD + ALIGN - 1) & ~(ALIGN - 1);",
                  "    word size = (word)n + OVERHEAD;"),
    # no room for the header and footer
    "no_overhead": ("    word size = ((word)n + OVERHEAD + ALIGN - 1) & ~(ALIGN - 1);",
                    "    word size = ((word)n + ALIGN - 1) & ~(ALIGN - 1);"),
    "no_prev": ("    if (!prev_used(b)) {", "    if (0) {"),
    "no_next": ("    if (!bused(next)) {", "    if (0) {"),
    "no_trim": ("    list_push(b);\n    trim(b);\n", "    list_push(b);\n"),
    # the block given back stays on the free list
    "trim_keeps_list": ("    list_remove(b);\n    *(word *)b = USED;\n    nbrk(b + 4);",
                        "    *(word *)b = USED;\n    nbrk(b + 4);"),
    # grow does not look at what nbrk returned
    "ignore_nbrk": ("    if (!nbrk(b + 4 + by))\n        return 0;", "    nbrk(b + 4 + by);"),
    # no upper bound: n + 8 wraps around
    "no_max": ("    if (n > MAX_REQUEST)\n        return 0;\n    word size", "    word size"),
    # a free list walk that never ends
    "loop": ("for (struct free_links *l = free_list; l; l = l->next)",
             "for (struct free_links *l = free_list; l; l = l->next ? l->next : l)"),
    "syntax": ("    return payload(b);\n}", "    return payload(b)\n}"),
    "no_realloc": ("void *realloc(void *p, size_t n)\n{", "void *my_realloc(void *p, size_t n)\n{"),
}


def start(root: Path, name: str, solution: bool = True) -> Path:
    path = root / name
    workspace.start(LAB, path, solution=solution)
    return path


def variant(root: Path, kind: str) -> Path:
    """A workspace whose malloc.c is the solution with one typical bug."""
    path = start(root, kind)
    file = path / STUDENT_FILE
    text = file.read_text()
    old, new = BUGS[kind]
    assert text.count(old) == 1, kind
    file.write_text(text.replace(old, new))
    return path


def check(path: Path, names: list[str] | None = None, lab=LAB) -> LabReport:
    checks = [c for c in lab.checks if names is None or c.name in names]
    return run_checks(lab, workspace.open_workspace(path)[1], checks, CheckLimits(timeout=60))


def result(report: LabReport, name: str):
    return next(c for c in report.checks if c.name == name)


def assert_clean(message: str) -> None:
    """A check's message in the labs' format, not a crash of pynova."""
    assert message.startswith(("expected: ", "your code does not load", "malloc.c does not")), \
        message
    assert "Traceback" not in message and "pynova raised" not in message, message


# ------------------------------------------------------------- the lab
def test_the_solution_passes_every_check(tmp_path):
    report = check(start(tmp_path, "solution"))
    assert [c.message for c in report.checks if not c.passed] == []
    assert report.score == report.max_score == 13


def test_the_untouched_skeleton_fails_every_check_cleanly(tmp_path):
    report = check(start(tmp_path, "skeleton", solution=False))
    assert [c.passed for c in report.checks] == [False] * len(NAMES)
    for c in report.checks:
        assert_clean(c.message)
        assert "got:      " in c.message and "run it:   pynova build " in c.message, c.message
    basic = result(report, BASIC).message
    assert basic.splitlines()[:2] == ["expected: malloc(24) to return a block",
                                      "got:      NULL (the break stayed at 0x5000)"]
    assert "block_size gives a size (step 1)" in basic and "grow moves the break" in basic
    assert "NULL" in result(report, STRESS).message


@pytest.mark.parametrize("kind, name, cause", [
    ("split_header", OVERLAP, "so it covers block 8: the split that handed out block 10 "
                              "did not shrink its size"),
    ("split_size", OVERLAP, "so it covers block 2: the split that handed out block 0 did not "
                            "shrink its size"),
    ("no_reuse", REUSE, "free did nothing to the block: its header still says 0x49 (USED)"),
    ("no_search", REUSE, "free marked the block free, but malloc did not take it again"),
    ("unaligned", ALIGN, "the block before it, malloc(9) at 0x5088, takes 17 bytes, not a "
                         "multiple of 8"),
    ("no_overhead", BASIC, "says its block is 24 bytes, too small for 24 bytes plus 8 of "
                           "header and footer"),
    ("no_prev", COALESCE, "did not merge the block with the free block before it"),
    ("no_next", COALESCE, "did not merge the block with the free block after it"),
    ("no_trim", TRIM, "free must give a free block at the top of the heap"),
    ("trim_keeps_list", TRIM, "still on the free list and was handed out twice"),
    ("ignore_nbrk", OOM, "nbrk returned 0: out of memory) and malloc used the memory anyway"),
    ("no_max", SIZES, "wraps around 2^32"),
])
def test_a_typical_bug_fails_its_check_with_the_cause_named(tmp_path, kind, name, cause):
    report = check(variant(tmp_path, kind), [BASIC, name])
    failed = result(report, name)
    assert not failed.passed
    assert_clean(failed.message)
    assert cause in failed.message
    if name != BASIC:  # the bug is in one step, not everywhere
        assert result(report, BASIC).passed, result(report, BASIC).message


def test_the_overlap_message_is_the_one_the_docs_show(tmp_path):
    message = result(check(variant(tmp_path, "split_header"), [OVERLAP]), OVERLAP).message
    shown = DOC.read_text().split("FAIL  0/2  step 2: live blocks never overlap\n")[1]
    doc_lines = [line.strip() for line in shown.split("```")[0].splitlines()
                 if line.strip() and not line.strip().startswith("run it:")]
    assert doc_lines == [line for line in message.splitlines()
                         if not line.startswith("run it:")]


def test_misalignment_also_fails_sizes_and_stress_but_nothing_else(tmp_path):
    report = check(variant(tmp_path, "unaligned"))
    assert {c.name for c in report.checks if not c.passed} == {ALIGN, SIZES, STRESS}
    assert "returned an address that is not a multiple of 8" in result(report, STRESS).message


def test_an_endless_loop_is_stopped_and_says_where(tmp_path):
    lab = replace(LAB, limits=replace(LAB.limits, timeout=0.5))
    message = result(check(variant(tmp_path, "loop"), [ALIGN], lab), ALIGN).message
    assert_clean(message)
    assert "stopped by the run's limit" in message and "an endless loop" in message
    assert re.search(r" in (malloc|find_fit)\+0x[0-9a-f]+ \(malloc\.c:\d+\)", message), message


def test_a_file_that_does_not_compile_shows_the_compilers_lines(tmp_path):
    report = check(variant(tmp_path, "syntax"))
    first, *rest = report.checks
    assert re.match(r"your code does not load: malloc\.c does not compile: malloc\.c:\d+:\d+: "
                    r"error: expected .;. before .}. token\n", first.message), first.message
    assert re.search(r"\n  malloc\.c:\d+:\d+: error: expected .;. before", first.message), \
        first.message
    assert "Traceback" not in first.message and str(tmp_path) not in first.message
    assert all(c.message.startswith("not run: your code does not load") for c in rest)


def test_a_missing_function_fails_with_the_linkers_message(tmp_path):
    message = result(check(variant(tmp_path, "no_realloc"), [STRESS]), STRESS).message
    assert message.startswith("malloc.c does not link with the check's program stress.c:\n")
    assert "undefined reference to `realloc'" in message
    assert "must define every function of the file it replaces" in message


def test_a_missing_student_file_does_not_load(tmp_path):
    path = start(tmp_path, "gone")
    (path / STUDENT_FILE).unlink()
    first = check(path).checks[0]
    assert first.message == ("your code does not load: the workspace has no malloc.c "
                             "(`pynova lab start malloc DIR` writes it)")


def test_the_generated_files_compile_without_warnings_but_unused_helpers(tmp_path):
    assert compile_alone(start(tmp_path, "solution") / STUDENT_FILE) == ""
    warnings = compile_alone(start(tmp_path, "skeleton", solution=False) / STUDENT_FILE)
    heads = [line for line in warnings.splitlines() if "warning:" in line]
    assert heads and all("[-Wunused-function]" in line for line in heads), warnings


def test_the_students_file_is_what_runs_and_the_cache_follows_its_content(tmp_path):
    """The same workspace, edited: the cached programs are keyed by the
    file's content, not its path."""
    path = start(tmp_path, "edited")
    file = path / STUDENT_FILE
    good = file.read_text()
    assert check(path, [REUSE]).passed
    file.write_text(good.replace(*BUGS["no_reuse"]))
    assert not check(path, [REUSE]).passed
    file.write_text(good)
    assert check(path, [REUSE]).passed


# ------------------------------------------------------- the toolchain
def test_build_key_covers_the_replacement_and_the_headers_beside_the_sources(tmp_path):
    tc = toolchain.find_toolchain()
    src, header, mine = tmp_path / "p.c", tmp_path / "p.h", tmp_path / "m.c"
    src.write_text('#include "p.h"\n')
    header.write_text("#define X 1\n")
    mine.write_text("int x;\n")

    def key() -> str:
        return toolchain.build_key([src], toolchain=tc, libc_replace={"malloc.c": mine})

    first = key()
    assert key() == first
    mine.write_text("int y;\n")
    assert key() != first
    second = key()
    header.write_text("#define X 2\n")
    assert key() != second
    assert toolchain.build_key([src], toolchain=tc) != key()


def test_pynova_build_with_the_students_file_uses_it(tmp_path):
    """The workspace README's way to run a program with your allocator."""
    path = start(tmp_path, "skeleton", solution=False)
    cmd = [sys.executable, "-m", "pynova"]
    subprocess.run([*cmd, "build", str(CHECKS_DIR / "basic.c"), STUDENT_FILE, "-o", "basic"],
                   cwd=path, check=True, capture_output=True, timeout=120)
    run = subprocess.run([*cmd, "run", "basic", "--mem", "16M", "--quiet"], cwd=path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0
    assert "check: malloc id=0 n=24 p=0x00000000" in run.stdout
    readme = (path / "README.md").read_text()
    assert "pynova build prog.c malloc.c -o prog" in readme and "--lab" not in readme


def test_run_with_lab_refuses_a_c_lab_instead_of_running_pynovas_allocator(tmp_path):
    path = start(tmp_path, "skeleton", solution=False)
    run = subprocess.run([sys.executable, "-m", "pynova", "run", "example:malloc_stress",
                          "--lab", str(path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr == (f"pynova run: --lab {path}: lab malloc is C code built into your "
                          f"program, not a kernel part: build the program with it (pynova "
                          f"build prog.c {path / STUDENT_FILE}), then run that\n")


# ------------------------------------------------------ hidden checks
def doc_block(language: str) -> str:
    section = DOC.read_text().split("### A hidden check for this lab")[1]
    return section.split(f"```{language}\n")[1].split("```")[0]


def test_the_docs_hidden_check_runs_with_the_students_allocator(tmp_path):
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "malloc.toml").write_text(doc_block("toml"))
    (hidden / "split_reuse.c").write_text(doc_block("c"))
    good, bad = start(tmp_path, "solution"), variant(tmp_path, "no_reuse")
    cmd = [sys.executable, "-m", "pynova", "lab", "check", "--json", "--checks", str(hidden)]
    import json
    for path, passed in ((good, True), (bad, False)):
        proc = subprocess.run([*cmd, str(path)], capture_output=True, text=True, timeout=300)
        data = json.loads(proc.stdout)
        last = data["checks"][-1]
        assert last["name"] == "hidden: a freed block serves two smaller ones"
        assert last["passed"] is passed, last["message"]
        assert proc.returncode == (0 if passed else 1)
    assert "split FAILED" in last["message"] and "malloc splits it" in last["message"]
