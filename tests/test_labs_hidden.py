"""Hidden checks as TOML data: end to end with a C program built by
pynova's toolchain and an ELF file, and every malformed file a one-line
error naming the file and the key."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from pynova.labs import workspace
from pynova.labs.checks import CheckLimits, run_checks
from pynova.labs.hidden import HiddenCheckError, load_dir, load_file, prepare
from pynova.labs.lab import StudentCodeError
from pynova.toolchain import example_path

from conftest import needs_toolchain
from labkit import HIDDEN, STUDENT_FILE, pynova, solution, toy_lab

HIDDEN_NAME = "hidden: a program of the teacher's, with the greeting"


def checks_dir(tmp_path: Path) -> Path:
    """The fixture's checks plus one on an ELF file (built here: no binary
    is committed)."""
    folder = tmp_path / "checks"
    shutil.copytree(HIDDEN, folder)
    shutil.copy(example_path("pagefault"), folder / "pagefault.elf")
    (folder / "zz_elf.toml").write_text("""\
[[check]]
name = "hidden: pagefault faults at 0x234"
lab = "toy"
program = "pagefault.elf"
score = 1
timeout = 3
[check.expect]
reason = "fault"
status = 139
fault = { vector = 14, cr2 = 0x234, error_code = 6 }
""")
    return folder


def run_with_hidden(path: Path, folder: Path):
    lab, ws = workspace.open_workspace(path)
    checks = list(lab.checks) + prepare(load_dir(folder, lab.name), lab)
    return run_checks(lab, ws, checks, CheckLimits(timeout=3))


@needs_toolchain
def test_hidden_checks_run_after_the_labs_own_and_pass_for_the_solution(tmp_path):
    result = run_with_hidden(solution(tmp_path), checks_dir(tmp_path))
    assert [(c.name, c.passed) for c in result.checks[3:]] == [
        (HIDDEN_NAME, True), ("hidden: pagefault faults at 0x234", True)]
    assert (result.score, result.max_score) == (8, 8)


@needs_toolchain
def test_a_hidden_check_fails_with_expected_got_and_the_teachers_why(tmp_path):
    path = solution(tmp_path)
    file = path / STUDENT_FILE
    file.write_text(file.read_text().replace("toy: starting", "toy: launching"))
    result = run_with_hidden(path, checks_dir(tmp_path))
    hidden = {c.name: c for c in result.checks}[HIDDEN_NAME]
    lines = hidden.message.splitlines()
    assert lines[0] == ("expected: the line 'toy: starting hello_again' in the output (after the "
                        "lines before it: ['toy: starting hello_again', 'hidden: first line', "
                        "'hidden: second line'])")
    assert lines[1] == "got:      the run ended by 'exit' with exit status 7 " \
                       "(exit(7)); the output was:"
    assert "  | toy: launching hello_again" in lines
    assert "  | hidden: second line" in lines
    assert lines[-1] == "why:      the kernel prints the greeting, then the program runs " \
                        "to exit(7)"


@needs_toolchain
def test_fault_expectations_compare_each_field_given(tmp_path):
    folder = checks_dir(tmp_path)
    text = (folder / "zz_elf.toml").read_text().replace("cr2 = 0x234", "cr2 = 0x1234")
    (folder / "zz_elf.toml").write_text(text)
    result = run_with_hidden(solution(tmp_path), folder)
    message = result.checks[-1].message
    assert message.splitlines()[0] == "expected: a fault with vector=0xe, cr2=0x1234, " \
                                      "error_code=0x6"
    assert message.splitlines()[1].startswith("got:      cr2=0x234 (the program faulted: "
                                              "Page Fault (vector 14) at eip=")


@needs_toolchain
def test_lab_check_and_grade_pick_up_hidden_checks(tmp_path):
    folder = checks_dir(tmp_path)
    status, out, err = pynova("lab", "check", str(solution(tmp_path)), "--checks",
                              str(folder), "--json")
    assert status == 0, err
    assert [c["name"] for c in json.loads(out)["checks"]][3:] == [
        HIDDEN_NAME, "hidden: pagefault faults at 0x234"]


def test_only_the_labs_checks_are_taken_and_names_are_unique(tmp_path):
    assert [c.name for c in load_dir(HIDDEN, "toy")] == [HIDDEN_NAME]
    assert [c.name for c in load_dir(HIDDEN, "elf")] == ["another lab's check, skipped"]
    folder = tmp_path / "dup"
    shutil.copytree(HIDDEN, folder)
    shutil.copy(HIDDEN / "toy.toml", folder / "again.toml")
    with pytest.raises(HiddenCheckError, match=re.escape(f"check name {HIDDEN_NAME!r} is used")):
        load_dir(folder, "toy")


def test_a_hidden_check_named_like_one_of_the_labs_is_refused(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "a.toml").write_text(VALID.replace('name = "x"', 'name = "step 2: the greeting"'))
    (folder / "hello.elf").write_bytes(b"\x7fELF")
    status, _, err = pynova("lab", "check", str(solution(tmp_path)), "--checks", str(folder))
    assert status == 2
    assert err == f"pynova lab check: {folder}: hidden check 'step 2: the greeting' has the " \
                  f"name of one of lab toy's own checks\n"


VALID = """\
[[check]]
name = "x"
lab = "toy"
program = "hello.elf"
score = 1
[check.expect]
status = 0
"""


@pytest.mark.parametrize("change, error", [
    (('score = 1', 'score = 1\ncolour = "red"'),
     "check 1 ('x'): key 'colour': unknown key (known: name, lab, program, score, mem, "
     "max_insns, timeout, quantum, why, expect)"),
    (('score = 1', 'score = "1"'), "check 1 ('x'): key 'score': expected a number >= 0, "
                                   "got '1'"),
    (('score = 1', 'score = -1'), "check 1 ('x'): key 'score': expected a number >= 0, got -1"),
    (('score = 1', 'score = true'), "key 'score': expected a number >= 0, got True"),
    (('name = "x"\n', ''), "check 1: missing key 'name' (a string)"),
    (('lab = "toy"\n', ''), "check 1 ('x'): missing key 'lab' (a lab's name)"),
    (('score = 1', 'score = 1\nmem = "lots"'),
     "key 'mem': expected a memory size like \"16M\", got 'lots'"),
    (('score = 1', 'score = 1\nmax_insns = 0'), "key 'max_insns': expected a positive "
                                                "integer, got 0"),
    (('score = 1', 'score = 1\ntimeout = "5"'), "key 'timeout': expected a positive number "
                                                "of seconds, got '5'"),
    (('score = 1', 'score = 1\nquantum = 1.5'), "key 'quantum': expected a positive "
                                                "integer, got 1.5"),
    (('program = "hello.elf"', 'program = "missing.c"'), "key 'program': no such file: "),
    (('program = "hello.elf"', 'program = ["hello.elf", "a.c"]'),
     "key 'program': a list must hold C/assembly sources (.c, .S, .s) only"),
    (('program = "hello.elf"', 'program = 3'), "key 'program': expected a file name or a "
                                               "list of source files, got 3"),
    (('status = 0', 'status = 256'), "check 1 ('x') [check.expect]: key 'status': expected "
                                     "an exit status 0..255, got 256"),
    (('status = 0', 'reason = "crash"'), "key 'reason': expected one of exit, done, fault, "
                                         "limit, elf, boot, kernel, got 'crash'"),
    (('status = 0', 'output = "Hello"'), "key 'output': expected a list of lines, got "
                                         "'Hello'"),
    (('status = 0', 'output = [1, 2]'), "key 'output': expected a list of strings (lines)"),
    (('status = 0', 'fault = { vector = 14, eip = "0x10" }'),
     "check 1 ('x') [check.expect.fault]: key 'eip': expected an integer, got '0x10'"),
    (('status = 0', 'fault = { vektor = 14 }'), "[check.expect.fault]: key 'vektor': "
                                                "unknown key (known: vector, eip, cr2, "
                                                "error_code)"),
    (('status = 0', 'stdout = "x"'), "[check.expect]: key 'stdout': unknown key"),
    (('status = 0', ''), "check 1 ('x') [check.expect]: expects nothing (give status, "
                         "reason, output, output_exact or fault)"),
    (('[check.expect]\nstatus = 0\n', ''), "check 1 ('x'): missing key 'expect'"),
    (('[[check]]', '[[check]]\n[[check'), "not valid TOML: "),
    (('[[check]]', 'title = "x"\n[[check]]'), "unknown key 'title' (a file holds "
                                              "[[check]] tables)"),
])
def test_a_malformed_checks_file_is_one_line_naming_file_and_key(tmp_path, change, error):
    (tmp_path / "hello.elf").write_bytes(b"\x7fELF")
    (tmp_path / "a.c").write_text("int main(void) { return 0; }\n")
    path = tmp_path / "bad.toml"
    old, new = change
    assert old in VALID + "[[check]]"
    path.write_text(VALID.replace(old, new, 1))
    with pytest.raises(HiddenCheckError) as err:
        load_file(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and error in message, message
    assert "\n" not in message


def test_an_empty_file_and_a_missing_directory_are_errors(tmp_path):
    (tmp_path / "empty.toml").write_text("")
    with pytest.raises(HiddenCheckError, match="empty.toml: no \\[\\[check\\]\\] tables"):
        load_dir(tmp_path, "toy")
    with pytest.raises(HiddenCheckError, match="not a directory of checks"):
        load_dir(tmp_path / "nowhere", "toy")


@needs_toolchain
def test_a_program_that_does_not_build_is_a_one_line_error(tmp_path):
    (tmp_path / "broken.c").write_text("int main(void) { return nope; }\n")
    (tmp_path / "a.toml").write_text(VALID.replace("hello.elf", "broken.c"))
    with pytest.raises(HiddenCheckError) as err:
        prepare(load_dir(tmp_path, "toy"), toy_lab())
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'a.toml'}: check 'x': key 'program': cannot "
                              f"build: ")
    assert "\n" not in message
    status, _, err_text = pynova("lab", "grade", str(toy_lab().origin), str(tmp_path),
                                 "--checks", str(tmp_path))
    assert status == 2 and err_text.count("\n") == 1 and "cannot build" in err_text


@needs_toolchain
def test_a_lab_that_builds_programs_with_the_students_code_builds_hidden_ones_too(tmp_path):
    """The malloc lab's way: the hidden program's sources are built in the
    check's process by the lab's program_builder (here: with a -D flag
    that stands for the student's allocator)."""
    from pynova.toolchain import build_program

    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "exit_code.c").write_text(
        '#include "pynova.h"\nint main(void) { exit(EXIT_CODE); }\n')
    (folder / "a.toml").write_text(VALID.replace("hello.elf", "exit_code.c")
                                   .replace("status = 0", "status = 9"))
    built: list[str] = []

    def builder(student, sources, output):
        built.append(student.module().greeting("x"))
        if "launching" in built[-1]:
            raise StudentCodeError("toy_lab.py: your allocator does not compile")
        return build_program(list(sources), output, extra_cflags=["-DEXIT_CODE=9"])

    lab = replace(toy_lab(), program_builder=builder)
    hidden_checks = prepare(load_dir(folder, "toy"), lab)
    path = solution(tmp_path)
    ws = workspace.open_workspace(path)[1]
    result = run_checks(lab, ws, hidden_checks, CheckLimits(timeout=10))
    assert result.checks[0].passed, result.checks[0].message
    assert built == []  # it ran in the check's process, not here
    file = path / STUDENT_FILE
    file.write_text(file.read_text().replace("toy: starting", "toy: launching"))
    result = run_checks(lab, ws, hidden_checks, CheckLimits(timeout=10))
    assert result.checks[0].message == "toy_lab.py: your allocator does not compile"
