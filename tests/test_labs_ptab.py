"""Lab ptab (issue 11): Ptab::insert_mapping. The skeleton fails every
check cleanly, pynova's solution passes them all, and typical bugs fail
the check that should catch them with the cause named."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pynova.labs.ptab import HELLO, MANY, NO_USER, READ_ONLY, RIGHTS, SINGLE, STUDENT_FILE, ZEROED

from conftest import needs_toolchain
from labkit import assert_all_pass, assert_caught, checked, lab_workspace

pytestmark = needs_toolchain

PDE_RIGHTS = "    pde |= attr & (PRESENT | RW | USER)"
NEW_TABLE = "        pde = pt.alloc_zeroed_frame() | PRESENT"
PDE_INDEX = "    pde_addr = pt.root + ((virt >> 22) & 0x3FF) * 4"
PTE_WRITE = "    pt.write(pte_addr, phys | (attr & ATTR_MASK))"

BUGS = {
    "directory entry without USER": ((PDE_RIGHTS, "    pde |= attr & (PRESENT | RW)"),),
    "new page table not zeroed": ((NEW_TABLE, "        pde = pt.alloc_frame() | PRESENT"),),
    "wrong index bits": ((PDE_INDEX, PDE_INDEX.replace("virt >> 22", "virt >> 20")),),
    "a new table for every page": (("    if not pde & PRESENT:\n", "    if True:\n"),),
    "PTE always USER": ((PTE_WRITE, PTE_WRITE.replace("ATTR_MASK)", "ATTR_MASK) | USER")),),
    "PDE rights replaced": ((PDE_RIGHTS, "    pde = (pde & PAGE_MASK) | (attr & (PRESENT "
                                         "| RW | USER))"),),
}
CAUGHT = {
    "directory entry without USER": {
        RIGHTS: ["PDE 0x", "(P RW)", "its page-directory entry has U/S=0", "the PDE must have "
                 "USER too"],
        HELLO: ["the CPU faulted fetching 0x3000 in ring 3: its page-directory entry has "
                "U/S=0"]},
    "new page table not zeroed": {
        ZEROED: ["1023 other entries are not zero; PTE[1] = 0x01010101 (P)",
                 "A frame from pt.alloc_frame() holds what its last user left"],
        HELLO: ["0x01010101 is the junk a frame comes with in a lab: a new page table was "
                "not cleared"]},
    "wrong index bits": {
        SINGLE: ["to make PDE[1]", "your code wrote PDE[4]", "0x405000 >> 22 = 1; entry 4 is "
                 "(0x405000 >> 20) & 0x3FF"]},
    "a new table for every page": {MANY: ["1030 frames taken: a new table for every page"]},
    "PTE always USER": {RIGHTS: ["the CPU to allow P RW on 0x10800000", "the PTE is "
                                 "phys | attr"],
                        NO_USER: ["user_probe printing 'read 0", "no USER"]},
    "PDE rights replaced": {RIGHTS: ["its page-directory entry has R/W=0", "never take away"]},
}


def test_the_skeleton_fails_every_check_cleanly_with_its_step(tmp_path):
    path = lab_workspace(tmp_path, "ptab", "skeleton", solution=False)
    results, report = checked(path)
    assert not report.passed and report.score == 0
    for name in (SINGLE, ZEROED, MANY, RIGHTS, HELLO, READ_ONLY, NO_USER):
        message = results[name].message
        assert message.startswith("your code raised NotImplementedError:\n"), message
        assert f'File "{STUDENT_FILE}"' in message
        assert "NotImplementedError: step 1: find the page-directory entry (PDE) of virt." \
            in message


def test_pynovas_solution_passes_every_check(tmp_path):
    assert_all_pass(lab_workspace(tmp_path, "ptab", "solution"), 11)


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_a_typical_bug_fails_its_check_with_the_cause_named(tmp_path, bug):
    assert_caught(lab_workspace(tmp_path, "ptab", "buggy", BUGS[bug]), CAUGHT[bug])


def test_run_with_the_skeleton_fails_in_the_loader_with_the_traceback(tmp_path):
    path = lab_workspace(tmp_path, "ptab", "skeleton", solution=False)
    proc = subprocess.run([sys.executable, "-m", "pynova", "run", "example:hello", "--lab",
                           str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 71
    assert proc.stderr.splitlines()[0] == "your code raised NotImplementedError:"
    assert proc.stderr.splitlines()[-1] == ("NotImplementedError: step 1: find the "
                                            "page-directory entry (PDE) of virt.")
    # The loader had printed its lines: the pages are mapped after step 1.
    assert "  segment virt 0x00003000 phys 0x00108000 size 0x1000 r-x" in proc.stdout
