"""Lab brk (issue 12): the nbrk system call. The skeleton fails every check
cleanly, pynova's solution passes them all, and typical bugs fail the check
that should catch them with the cause named; what a student's nbrk returns
is checked by the kernel."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pynova
from pynova.labs.brk import ASKS, EDGES, FUZZ, GROW, OOM, PROBE, SHRINK, STUDENT_FILE, ZERO

from conftest import needs_toolchain
from labkit import assert_all_pass, assert_caught, checked, lab_workspace

pytestmark = needs_toolchain

ALL = (ASKS, GROW, EDGES, ZERO, SHRINK, PROBE, OOM, FUZZ)
ROLLBACK = ("    except OutOfMemory:\n        shrink(heap, old, page)\n        return False",)
GROW_RANGE = "    page, end = align_up(old), align_up(new_break)"
TAIL = "    if old % PAGE_SIZE:\n        heap.write"
FLUSH = "    heap.free_empty_tables(start, end)\n    heap.flush()"

#: Typical bugs: (text of the generated solution, what the student wrote).
BUGS = {
    "no zero-fill": (("frame = heap.alloc_zeroed_frame()", "frame = heap.alloc_frame()"),),
    "no rollback on out of memory": ((ROLLBACK[0], "    except OutOfMemory:\n"
                                                   "        return False"),),
    "one page short at a page boundary": ((GROW_RANGE, "    page, end = align_up(old), "
                                                       "new_break & ~(PAGE_SIZE - 1)"),),
    "one page too many at a page boundary": ((GROW_RANGE, "    page, end = align_up(old), "
                                                          "align_up(new_break + 1)"),),
    "no TLB flush": ((FLUSH, "    heap.free_empty_tables(start, end)"),),
    "OutOfMemory escapes": ((ROLLBACK[0], "    except ZeroDivisionError:\n"
                                          "        return False"),),
    "no upper bound": (("    if not heap.initial_break <= new_break <= USER_BREAK_LIMIT:",
                        "    if not heap.initial_break <= new_break:"),),
    "old tail not cleared": ((TAIL, "    if False:\n        heap.write"),),
    "empty page tables kept": (("    heap.free_empty_tables(start, end)\n", ""),),
    "no return value": (("    heap.brk = new_break\n    return old", "    heap.brk = new_break"),),
}
CAUGHT = {
    "no zero-fill": {
        GROW: ["page 0x4000, new heap memory, to read as zero", "reads 0x01",
               "kalloc's junk", "take heap.alloc_zeroed_frame()"],
        PROBE: ["grow FAILED"]},
    "no rollback on out of memory": {
        OOM: ["nbrk(0x4004000) (64 MiB more than the 16 MiB machine has) to return 0 and "
              "change nothing", "it returned 0, but the free-frame count went from",
              "frames not given back", "a page table was made and kept",
              "unmap every page this call mapped"],
        FUZZ: ["this grow needs more frames than are free at 16 MiB"]},
    "one page short at a page boundary": {
        EDGES: ["page 0x5000 is not mapped", "byte 0x5000 lies below the break 0x5001",
                "not align_down(new_break) = 0x5000 (one page short"],
        GROW: ["in ring 3 the CPU would fault writing 0x7000: its PTE has P=0"]},
    "one page too many at a page boundary": {
        EDGES: ["page 0x5000 is mapped too", "a break on a page boundary needs no page of its "
                "own (one page too many at a page boundary)"],
        GROW: ["one page too many at a page boundary"]},
    "no TLB flush": {
        SHRINK: ["heap.flush() after the pages are unmapped", "no flush after the last "
                 "heap.unmap", "the CPU caches translations in its TLB"],
        PROBE: ["pynova's run faults reading 0x7000, a page nbrk gave back; in your run the "
                "CPU read it", "TLB"]},
    "OutOfMemory escapes": {
        OOM: ["to return 0 when the frames run out", "OutOfMemory came out of your nbrk:",
              'File "brk_lab.py"', "an exception out of a system call ends the whole "
                                   "machine"]},
    "no upper bound": {
        ASKS: ["nbrk(0xbffff001) to return 0 (refused)", "above USER_BREAK_LIMIT 0xbffff000"]},
    "old tail not cleared": {
        ZERO: ["between the old and the new break, to read as zero", "reads 0xab",
               "heap.write(old, bytes(n))"],
        PROBE: ["zero after shrink and grow FAILED"]},
    "empty page tables kept": {
        SHRINK: ["to leave the address space as it was", "a page table was made and kept",
                 "heap.free_empty_tables(start, end) gives them back"]},
    "no return value": {
        GROW: ["to return an int 0..2^32-1", "nbrk returned None", "ended without a return"],
        PROBE: ["expected: nbrk to return an int 0..2^32-1 (for the caller's eax)"]},
}


def test_the_skeleton_fails_every_check_cleanly_with_its_step(tmp_path):
    results, report = checked(lab_workspace(tmp_path, "brk", "skeleton", solution=False))
    assert not report.passed and report.score == 0
    for name in ALL:
        message = results[name].message
        assert message.startswith("your code raised NotImplementedError:\n"), message
        assert f'File "{STUDENT_FILE}"' in message
        assert message.splitlines()[-1].startswith(
            "NotImplementedError: step 1: answer a question, and refuse an address out of "
            "bounds.") or "note: this check builds on" in message.splitlines()[-1]


def test_pynovas_solution_passes_every_check(tmp_path):
    names = assert_all_pass(lab_workspace(tmp_path, "brk", "solution"), 12)
    assert names == list(ALL)


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_a_typical_bug_fails_its_check_with_the_cause_named(tmp_path, bug):
    assert_caught(lab_workspace(tmp_path, "brk", "buggy", BUGS[bug]), CAUGHT[bug])


def function_text(text: str, name: str) -> str:
    """The text of the function ``name`` (up to the next blank lines)."""
    return f"\ndef {name}" + text.split(f"\ndef {name}", 1)[1].split("\n\n\n")[0]


def test_steps_are_checked_on_their_own(tmp_path):
    """Steps 1 and 2 done, 3 and 4 as the skeleton has them: the first
    three checks pass, and the next ones say what is missing."""
    path = lab_workspace(tmp_path, "brk", "steps12")
    skeleton = (lab_workspace(tmp_path, "brk", "skeleton", solution=False)
                / STUDENT_FILE).read_text()
    text = (path / STUDENT_FILE).read_text()
    for name in ("zero_tail", "shrink"):
        text = text.replace(function_text(text, name), function_text(skeleton, name))
    (path / STUDENT_FILE).write_text(text)
    results, _ = checked(path)
    assert [results[n].passed for n in ALL] == [True, True, True, False, False, False, False,
                                               False]
    # step 3's skeleton does nothing (so that a grow works before it is done)
    assert "reads 0xab" in results[ZERO].message and "heap.write(old, bytes(n))" in \
        results[ZERO].message
    assert "NotImplementedError: step 4:" in results[SHRINK].message


def test_run_with_a_part_that_returns_nothing_is_the_students_error(tmp_path):
    path = lab_workspace(tmp_path, "brk", "none", BUGS["no return value"])
    proc = subprocess.run([sys.executable, "-m", "pynova", "run", "example:nbrk_probe",
                           "--lab", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 71
    assert proc.stderr.splitlines() == [
        "the kernel refused what your nbrk handed it:",
        "expected: nbrk to return an int 0..2^32-1 (for the caller's eax)",
        "got:      nbrk returned None",
        "why:      the kernel puts the result into the caller's eax; a path of your function "
        "ended without a return (Python then returns None)"]
    assert "reject ok" in proc.stdout     # the refusals returned 0: only then it failed
    r = pynova.run("example:nbrk_probe", lab=path)
    assert (r.status, r.reason) == (71, "lab")
    assert r.message.startswith("the kernel refused what your nbrk handed it:\n")


def test_run_with_the_solution_is_pynovas_run(tmp_path):
    path = lab_workspace(tmp_path, "brk", "solution")
    mine = pynova.run("example:nbrk_probe", lab=path, mem=16 << 20)
    own = pynova.run("example:nbrk_probe", mem=16 << 20)
    assert mine.program_output == own.program_output
    assert b"oom rollback ok\ngrow after oom ok\n" in mine.program_output
    assert (mine.status, mine.fault) == (own.status, own.fault) == (139, own.fault)
