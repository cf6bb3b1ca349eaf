"""Lab threads (issue 12): cooperative threads. The skeleton fails every
check cleanly, pynova's solution passes them all, typical bugs fail the
check that should catch them with the cause named, and a kernel with a
student's thr_yield is cooperative and checks the queue it is left."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pynova
from pynova.labs.threads import BAD, CREATE, MANY, NEWEST, REGS, STUDENT_FILE, YIELD

from conftest import needs_toolchain
from labkit import assert_all_pass, assert_caught, checked, lab_workspace

pytestmark = needs_toolchain

ALL = (BAD, CREATE, YIELD, NEWEST, REGS, MANY)
ROTATE = "    threads.ready.rotate(-1)"
QUEUE = "    threads.ready.insert(1, threads.new_thread(eip, stack_top))"
CHECK = "    if eip >= USER_END or stack_top > USER_END or len(threads.ready) >= " \
        "threads.max_ready:\n        return ERROR\n"

#: Typical bugs: (text of the generated solution, what the student wrote).
BUGS = {
    "yield not rotating": ((ROTATE, "    pass"),),
    "yield turning the wrong way": ((ROTATE, "    threads.ready.rotate(1)"),),
    "the new thread's stack not used": ((QUEUE, "    threads.ready.insert(1, threads.new_thread("
                                                "eip, threads.current.regs.esp))"),),
    "registers not kept": ((ROTATE, "    old = threads.ready.popleft()\n    threads.ready."
                                    "append(threads.new_thread(old.regs.eip, old.regs.esp))"),),
    "new thread at the back": ((QUEUE, "    threads.ready.append(threads.new_thread(eip, "
                                       "stack_top))"),),
    "no argument checks": ((CHECK, ""),),
    "thread made before the checks": ((CHECK, "    made = threads.new_thread(eip, stack_top)\n"
                                              + CHECK),),
    "-1 for an error": (("        return ERROR\n", "        return -1\n"),),
}
CAUGHT = {
    "yield not rotating": {
        YIELD: ["ready = [1, 2, 3, 0] after thr_yield with ready = [0, 1, 2, 3]",
                "got:      ready = [0, 1, 2, 3]", "the queue did not change: thread 0, the "
                "running thread (ready[0]), would run again at once"],
        REGS: ["only 0 of the 2 threads got to their end"],
        MANY: ["only 0 of the 100 threads got to their end"]},
    "yield turning the wrong way": {
        YIELD: ["got:      ready = [3, 0, 1, 2]", "the circle turned the wrong way"]},
    "the new thread's stack not used": {
        CREATE: ["expected: threads.new_thread(0x3000, 0x8000)",
                 "got:      threads.new_thread(0x3000, 0x2000)",
                 "the stack is the creator's (its esp): two threads on one stack"]},
    "registers not kept": {
        YIELD: ["got:      ready = [1, 2, 3, 4]", "thread 0 was replaced by a new thread 4",
                "loses every other register"],
        REGS: ["expected: thr_yield to keep every ready thread in the ready queue",
               "thread 0 is no longer in it, and a new thread 3",
               "a thread's registers are kept in its Ec"]},
    "new thread at the back": {
        NEWEST: ["expected: after main creates A, then B: ready = [main, B, A]",
                 "got:      ready = [main, A, B]", "the course's rule puts it right after its "
                 "creator, ready.insert(1, thread)"],
        MANY: ["first=1,2,3,4"]},
    "no argument checks": {
        BAD: ["thr_create(0xc0000000, 0x8000) to return ERROR (0xffffffff)",
              "eip 0xc0000000 is the kernel's first byte"]},
    "thread made before the checks": {
        BAD: ["thr_create(0xc0000000, 0x8000) to change nothing", "1 thread(s) made",
              "check the arguments first, then make the thread"],
        CREATE: ["one call of threads.new_thread(eip, stack_top)", "got:      2 calls"]},
    "-1 for an error": {
        BAD: ["to return an int 0..2^32-1 (for the caller's eax)", "thr_create returned -1",
              "-1 does not fit (a failure is ERROR (0xFFFFFFFF))"]},
}


def test_the_skeleton_fails_every_check_cleanly_with_its_step(tmp_path):
    results, report = checked(lab_workspace(tmp_path, "threads", "skeleton", solution=False))
    assert not report.passed and report.score == 0
    for name in ALL:
        message = results[name].message
        assert message.startswith("your code raised NotImplementedError:\n"), message
        assert f'File "{STUDENT_FILE}"' in message
    assert "NotImplementedError: step 1: refuse what cannot be a user thread, before anything " \
           "changes." in results[CREATE].message
    assert "NotImplementedError: step 3: rotate the circle by one." in results[YIELD].message


def test_pynovas_solution_passes_every_check(tmp_path):
    names = assert_all_pass(lab_workspace(tmp_path, "threads", "solution"), 10)
    assert names == list(ALL)


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_a_typical_bug_fails_its_check_with_the_cause_named(tmp_path, bug):
    assert_caught(lab_workspace(tmp_path, "threads", "buggy", BUGS[bug]), CAUGHT[bug])


def test_a_step_is_checked_with_pynovas_other_step(tmp_path):
    """A thr_yield that does nothing fails only the checks that use it:
    thr_create's are run with pynova's own thr_yield."""
    results, _ = checked(lab_workspace(tmp_path, "threads", "buggy",
                                       BUGS["yield not rotating"]))
    assert [results[n].passed for n in ALL] == [True, True, False, False, False, False]


def test_run_with_a_yield_that_loses_a_thread_is_the_students_error(tmp_path):
    path = lab_workspace(tmp_path, "threads", "lost", BUGS["registers not kept"])
    proc = subprocess.run([sys.executable, "-m", "pynova", "run", "example:threads", "--lab",
                           str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 71
    lines = proc.stderr.splitlines()
    assert lines[:3] == ["the kernel refused what your thr_yield handed it:",
                         "expected: thr_yield to keep every ready thread in the ready queue",
                         "got:      thread 0 is no longer in it, and a new thread 3 "
                         f"(eip={lines[2].split('eip=')[1]}"]
    assert lines[3].startswith("why:      a thread's registers are kept in its Ec")
    assert proc.stdout.splitlines()[-1] == "main step 0 (EC 0)"


def test_a_lab_run_is_cooperative_whatever_the_quantum(tmp_path):
    """With the student's thr_yield the kernel does not preempt: the
    spinner, which needs preemption, starves main, as in the course."""
    path = lab_workspace(tmp_path, "threads", "solution")
    own = pynova.run("example:spinner", quantum=1000, mem=4 << 20, max_insns=3_000_000)
    lab = pynova.run("example:spinner", quantum=1000, mem=4 << 20, max_insns=300_000, lab=path)
    assert own.status == 0 and "spinner ran" in own.program_output.decode()
    assert (lab.status, lab.reason) == (124, "limit")
    assert lab.program_output.decode().splitlines() == ["tick 0"]
    r = pynova.run("example:threads", lab=path, quantum=1)
    assert r.program_output == pynova.run("example:threads", quantum=None).program_output
