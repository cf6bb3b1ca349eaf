"""Lab elf (issue 11): the seed's assignment in pynova. The skeleton fails
every check cleanly, pynova's solution and a student's seed-style solution
pass them all, and typical bugs fail the check that should catch them with
the cause named; `run --lab`, `maps --lab`, `--trace` and the API run with
the student's code."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import pynova
from pynova.labs.elf import (
    BSS,
    ELF_ERRORS,
    FAULT,
    LAYOUT,
    SHARED,
    STEP1,
    STEP2,
    STEP3,
    STUDENT_FILE,
    WHOLE,
)

from conftest import needs_toolchain
from labkit import assert_all_pass, assert_caught, checked, lab_workspace

pytestmark = needs_toolchain

SOLVED_STEP1 = "    eh = check_header(k.image)  # the seed's checks, and a few more (elf.py)\n"
SOLVED_STEP2 = ("    plan = k.plan(program)  # every check first; then each page's frame and "
                "rights\n")
IRET = "k.iret([program.entry, SEL_USER_CODE, USER_EFLAGS, k.stack_top, SEL_USER_DATA])"

#: Steps 1 and 2 as a student writes them from the TODO comments alone
#: (the seed's loop, no pynova helper but k.alloc_frame).
STUDENT_STEP1 = '''    eh = Eh.unpack(k.image)
    if eh.ident[:4] != ELF_MAGIC:
        raise ElfError("bad magic")
    if eh.data != ELFDATA2LSB:
        raise ElfError("not little-endian")
    if eh.type != ET_EXEC:
        raise ElfError("not an executable")
    segments = []
    for i in range(eh.phnum):
        ph = Ph.unpack(k.image, eh.phoff + i * PH.size)
        if ph.type != PT_LOAD:
            continue
        segments.append(ph)
        virt = align_down(ph.vaddr)
        size = align_up(ph.vaddr + ph.memsz) - virt
        k.print(segment_line(virt, k.module.start + align_down(ph.offset), size, ph.flags))
    return Program(eh.entry, tuple(segments))
'''
STUDENT_STEP2 = '''    for ph in program.segments:
        if ph.filesz > ph.memsz or ph.vaddr % PAGE_SIZE != ph.offset % PAGE_SIZE:
            raise ElfError("bad segment")
    rights = {}
    frames = {}
    for ph in program.segments:
        attr = PRESENT | USER | (RW if ph.flags & PF_W else 0)
        first = align_down(ph.vaddr)
        file_end = align_up(ph.vaddr + ph.filesz) if ph.filesz else first
        for virt in range(first, align_up(ph.vaddr + ph.memsz), PAGE_SIZE):
            rights[virt] = rights.get(virt, 0) | attr
            if virt not in frames:
                if virt < file_end:
                    frames[virt] = k.module.start + align_down(ph.offset) + (virt - first)
                else:
                    frames[virt] = k.alloc_frame()
    for virt in sorted(frames):
        k.insert_mapping(virt, frames[virt], rights[virt])
    return
'''
STUDENT = ((SOLVED_STEP1, STUDENT_STEP1), (SOLVED_STEP2, STUDENT_STEP2))

#: Typical bugs, as edits of the student-style solution, and the check
#: that must catch each with words that name the cause.
BUGS = {
    "no USER bit": (("attr = PRESENT | USER | (RW", "attr = PRESENT | (RW"),),
    "RW on the text": (("attr = PRESENT | USER | (RW if ph.flags & PF_W else 0)",
                        "attr = PRESENT | USER | RW"),),
    "last page of a straddling segment": (
        ("range(first, align_up(ph.vaddr + ph.memsz), PAGE_SIZE)",
         "range(first, first + align_up(ph.memsz), PAGE_SIZE)"),),
    "iret frame order": ((IRET, IRET.replace("SEL_USER_CODE, USER_EFLAGS",
                                             "USER_EFLAGS, SEL_USER_CODE")),),
    "no union of rights": (("rights[virt] = rights.get(virt, 0) | attr",
                            "rights[virt] = attr"),),
    "no fresh frames for .bss": (("                if virt < file_end:",
                                  "                if True:"),),
    "esp fixed at 0x2000": ((IRET, IRET.replace("k.stack_top", "0x2000")),),
    "size from memsz alone": (("        size = align_up(ph.vaddr + ph.memsz) - virt",
                               "        size = align_up(ph.memsz)"),),
}
CAUGHT = {
    "no USER bit": {STEP2: ["PTE 0x00107003 (P RW)", "its PTE has U/S=0, so the mapping "
                            "lacks USER"],
                    WHOLE: ["the CPU faulted fetching 0x3000 in ring 3: its PTE has U/S=0, "
                            "so the mapping lacks USER"]},
    "RW on the text": {STEP2: ["page 0x3000 of hello", "with P US", "(P RW US)",
                               "have no PF_W, so its pages must be read-only"]},
    "last page of a straddling segment": {
        STEP2: ["page 0x3000 of straddle", "not mapped", "counting align_up(memsz) pages "
                "from align_down(vaddr) loses the last page"]},
    "iret frame order": {STEP3: ["cs=0x200, eflags=0x1b", "General Protection in ring 0",
                                 "exit status 134", "the right ones in the wrong order"]},
    "no union of rights": {SHARED: ["the CPU faulted writing 0x2074 in ring 3: its PTE has "
                                    "R/W=0", "it needs the rights of both"]},
    "no fresh frames for .bss": {BSS: ["bss printing 'bss: big[", "showing zeros (.bss)",
                                       "needs a fresh frame that reads as zero"]},
    "esp fixed at 0x2000": {LAYOUT: ["esp=0x2000", "word 3 is the new esp: k.stack_top, "
                                     "0xc0000000 for this program"]},
    "size from memsz alone": {STEP1: ["size 0x2000 rw-", "size 0x1000 rw-",
                                      "align_up(memsz) = 0x1000 is a page short"]},
}


def test_the_skeleton_fails_every_check_cleanly_with_its_step(tmp_path):
    path = lab_workspace(tmp_path, "elf", "skeleton", solution=False)
    results, report = checked(path)
    assert not report.passed and report.score == 0
    step_of = {STEP1: 1, ELF_ERRORS: 1, STEP2: 2, STEP3: 3, WHOLE: 1, BSS: 1, SHARED: 1,
               FAULT: 1, LAYOUT: 1}
    for name, step in step_of.items():
        message = results[name].message
        assert message.startswith("your code raised NotImplementedError:\n"), message
        assert f'File "{STUDENT_FILE}"' in message
        assert f"NotImplementedError: step {step}: " in message
        assert "pynova/" not in message  # pynova's frames are left out


@pytest.mark.parametrize("kind", ["solution", "student"])
def test_pynovas_solution_and_a_seed_style_one_pass_every_check(tmp_path, kind):
    assert_all_pass(lab_workspace(tmp_path, "elf", kind, STUDENT if kind == "student" else ()), 13)


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_a_typical_bug_fails_its_check_with_the_cause_named(tmp_path, bug):
    assert_caught(lab_workspace(tmp_path, "elf", "buggy", STUDENT + BUGS[bug]), CAUGHT[bug])


def test_bad_elf_files_must_be_refused_with_an_elf_error(tmp_path):
    lenient = lab_workspace(tmp_path, "elf", "lenient", STUDENT + (
        ('    if eh.data != ELFDATA2LSB:\n        raise ElfError("not little-endian")\n', ""),))
    results, _ = checked(lenient)
    assert not results[ELF_ERRORS].passed and results[STEP1].passed
    assert results[ELF_ERRORS].message.startswith(
        "expected: ElfError for a file with data == 2 (big-endian)\n"
        "got:      read_program_headers accepted it and returned Program(")


# ----------------------------------------------------------- run --lab
def pynova_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pynova", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_run_with_the_skeleton_shows_the_students_traceback_and_71(tmp_path):
    path = lab_workspace(tmp_path, "elf", "skeleton", solution=False)
    lines = (path / STUDENT_FILE).read_text().splitlines()
    call = lines.index("    program = read_program_headers(k)") + 1
    raised = next(n for n, line in enumerate(lines, 1) if "raise NotImplementedError" in line)
    proc = pynova_cli("run", "example:hello", "--lab", str(path))
    assert proc.returncode == 71
    assert proc.stdout.splitlines()[-1].startswith("load module from ")
    assert proc.stderr.splitlines() == [
        "your code raised NotImplementedError:",
        "Traceback (your code; pynova's frames left out):",
        f'  File "{STUDENT_FILE}", line {call}, in root_invoke',
        "    program = read_program_headers(k)",
        f'  File "{STUDENT_FILE}", line {raised}, in read_program_headers',
        '    raise NotImplementedError("step 1: check the ELF header, then find and print '
        'the PT_LOAD segments.")',
        "NotImplementedError: step 1: check the ELF header, then find and print the PT_LOAD "
        "segments."]


def test_run_maps_and_trace_with_the_students_solution(tmp_path):
    path = lab_workspace(tmp_path, "elf", "student", STUDENT)
    proc = pynova_cli("run", "example:hello", "--lab", str(path), "--trace=syscall")
    assert proc.returncode == 132 and "Hello world!" in proc.stdout.splitlines()
    assert "sys_print(" in proc.stderr
    maps = pynova_cli("maps", "example:hello", "--lab", str(path))
    assert maps.returncode == 0
    assert "0x00003000-0x00004000  0x00108000-0x00109000     0x1000  P -- US - -" in maps.stdout
    bad = pynova_cli("run", "example:hello", "--lab", str(tmp_path / "nothing"))
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == f"pynova run: --lab {tmp_path / 'nothing'}: {tmp_path / 'nothing'}: " \
                         f"not a directory\n"


def test_a_wrong_iret_frame_is_an_unhandled_kernel_exception(tmp_path):
    path = lab_workspace(tmp_path, "elf", "order", BUGS["iret frame order"])
    proc = pynova_cli("run", "example:hello", "--lab", str(path))
    assert proc.returncode == 134 and proc.stderr == ""
    assert proc.stdout.splitlines()[-7:] == [
        "Ec::handle_exc General Protection (eip=0xc0103000 cr2=0x0) in ring 0, error code 0x200",
        "eax=0x0 ebx=0x0 ecx=0x0 edx=0x0",
        "esi=0x0 edi=0x0 ebp=0x0 esp=0xc0105fec",
        "iret frame at 0xc0105fec: eip=0x3000 cs=0x200 eflags=0x1b esp=0x2000 ss=0x23",
        "unhandled kernel exception",
        "why: the kernel's iret refused word 1 of the frame, the new cs: 0x200 selects GDT "
        "entry 64, beyond the 6 entries of pynova's GDT (General Protection, error code "
        "0x200: the selector)",
        "  a return to ring 3 needs cs = SEL_USER_CODE 0x1b (word 1) and ss = SEL_USER_DATA "
        "0x23 (word 4): iret pops eip, cs, eflags, esp, ss in that order (SDM vol. 3A, "
        "6.12.1, Figure 6-4)"]
    r = pynova.run("example:hello", lab=path)
    assert (r.status, r.reason) == (134, "kernel")
    assert r.fault is not None and (r.fault.vector, r.fault.error_code) == (13, 0x200)
    assert r.message == ("unhandled kernel exception: General Protection in the kernel's iret "
                         "(error code 0x200)")


def test_the_api_runs_with_a_lab(tmp_path):
    good = lab_workspace(tmp_path, "elf", "good")
    r = pynova.run("example:hello", lab=good)
    assert (r.status, r.program_output) == (132, b"Hello world!\n")
    skeleton = lab_workspace(tmp_path, "elf", "skeleton", solution=False)
    r = pynova.run("example:hello", lab=skeleton)
    assert (r.status, r.reason) == (71, "lab")
    assert r.message.startswith("your code raised NotImplementedError:\nTraceback (your code")
    assert r.output.splitlines()[-1].startswith("load module from ")
    broken = lab_workspace(tmp_path, "elf", "broken", (("from __future__", "from __future"),))
    r = pynova.run("example:hello", lab=broken)
    assert (r.status, r.reason, r.output) == (71, "lab", "")
    assert r.message.startswith(f"your code does not load: {STUDENT_FILE} does not import:")
    with pytest.raises(ValueError, match="lab: .*not a lab workspace"):
        pynova.run("example:hello", lab=tmp_path)


def test_check_json_is_the_documented_shape(tmp_path):
    path = lab_workspace(tmp_path, "elf", "order", STUDENT + BUGS["iret frame order"])
    proc = pynova_cli("lab", "check", str(path), "--json")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert list(data) == ["lab", "checks", "score", "max_score"] and data["lab"] == "elf"
    assert [c["name"] for c in data["checks"]] == [STEP1, ELF_ERRORS, STEP2, STEP3, WHOLE,
                                                   BSS, SHARED, FAULT, LAYOUT]
    assert all(list(c) == ["name", "passed", "score", "max_score", "message"]
               for c in data["checks"])
    assert (data["score"], data["max_score"]) == (6, 13)


def test_hidden_checks_run_with_the_students_root_invoke(tmp_path):
    from pynova.toolchain import example_path

    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "elf.toml").write_text(
        '[[check]]\nname = "hidden: hello ends in the kernel\'s iret"\nlab = "elf"\n'
        f'program = "{example_path("hello")}"\nscore = 1\n'
        '[check.expect]\nreason = "kernel"\nstatus = 134\n')
    order = lab_workspace(tmp_path, "elf", "order", BUGS["iret frame order"])
    solution = lab_workspace(tmp_path, "elf", "solution")
    results = {}
    for path in (order, solution):
        proc = pynova_cli("lab", "check", str(path), "--checks", str(hidden), "--json")
        results[path.name] = json.loads(proc.stdout)["checks"][-1]
    assert results["order"]["passed"] and not results["solution"]["passed"]
    assert results["solution"]["message"].startswith("expected: the run to end by 'kernel'\n"
                                                     "got:      the program faulted: Invalid "
                                                     "Opcode")
