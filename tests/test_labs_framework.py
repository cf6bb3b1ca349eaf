"""The lab framework with the test lab "toy": workspaces, loading the
student's code, isolated checks (every way a check can end), reports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from pynova.labs import report, workspace
from pynova.labs.checks import CheckLimits, CheckResult, LabReport, run_checks
from pynova.labs.isolate import run_isolated
from pynova.labs.lab import StudentCodeError, Workspace
from pynova.labs.student import import_file, student_traceback
from pynova.toolchain import example_path

from labkit import STUDENT_FILE, pynova, skeleton, solution, toy_lab, variant, wait_gone

#: Small limits keep the suite fast; the memory one still fits Unicorn.
FAST = CheckLimits(timeout=1.0)


def check(path, limits=FAST) -> LabReport:
    lab, ws = workspace.open_workspace(path)
    return run_checks(lab, ws, limits=limits)


def by_name(result: LabReport) -> dict[str, CheckResult]:
    return {c.name: c for c in result.checks}


# ----------------------------------------------------------- workspaces
def test_start_writes_the_student_file_readme_and_metadata(tmp_path):
    path = skeleton(tmp_path)
    assert sorted(p.name for p in path.iterdir()) == [".pynova-lab.json", "README.md",
                                                      STUDENT_FILE]
    meta = json.loads((path / ".pynova-lab.json").read_text())
    assert meta["lab"] == "toy" and meta["solution"] is False
    assert meta["lab_file"].endswith("tests/lab_fixture/toylab.py")
    text = (path / STUDENT_FILE).read_text()
    assert text.startswith("# toy_lab.py: your part of pynova lab toy (a test lab).\n")
    assert 'raise NotImplementedError("step 1: ' in text
    readme = (path / "README.md").read_text()
    assert readme.startswith("# pynova lab toy: a test lab\n")
    assert "pynova lab check ." in readme
    sol = solution(tmp_path)
    assert json.loads((sol / ".pynova-lab.json").read_text())["solution"] is True
    assert "toy: starting {program}" in (sol / STUDENT_FILE).read_text()


def test_start_never_overwrites(tmp_path):
    path = skeleton(tmp_path)
    (path / STUDENT_FILE).write_text("# my work\n")
    status, out, err = pynova("lab", "start", str(toy_lab().origin), str(path))
    assert status == 2 and out == ""
    assert err == f"pynova lab start: {path}: would overwrite toy_lab.py, README.md, " \
                  f".pynova-lab.json (choose a new directory)\n"
    assert (path / STUDENT_FILE).read_text() == "# my work\n"
    afile = tmp_path / "afile"
    afile.write_text("")
    status, _, err = pynova("lab", "start", str(toy_lab().origin), str(afile))
    assert status == 2 and "exists and is not a directory" in err


def test_open_workspace_refuses_what_is_not_one(tmp_path):
    with pytest.raises(workspace.WorkspaceError, match="not a directory"):
        workspace.open_workspace(tmp_path / "nothing")
    with pytest.raises(workspace.WorkspaceError, match="not a lab workspace"):
        workspace.open_workspace(tmp_path)
    (tmp_path / ".pynova-lab.json").write_text("{not json")
    with pytest.raises(workspace.WorkspaceError, match="unreadable"):
        workspace.open_workspace(tmp_path)
    (tmp_path / ".pynova-lab.json").write_text('{"lab": "elf"}')
    with pytest.raises(workspace.WorkspaceError, match="a workspace of lab elf, not toy"):
        workspace.open_workspace(tmp_path, str(toy_lab().origin))
    with pytest.raises(workspace.WorkspaceError, match="no lab named 'nope'"):
        workspace.open_workspace(tmp_path, "nope")


# ---------------------------------------------------- the student's code
def test_student_files_import_by_path_under_fresh_names(tmp_path):
    path = solution(tmp_path)
    before_path = list(sys.path)
    before = {k: v for k, v in sys.modules.items() if k.startswith("pynova")}
    a = import_file(path / STUDENT_FILE, "toy", path)
    b = import_file(path / STUDENT_FILE, "toy", path)
    assert a is not b and a.__name__ != b.__name__
    assert a.__name__.startswith("_pynova_student_toy_toy_lab_")
    assert a.greeting("x") == "toy: starting x"
    assert sys.path == before_path
    assert {k: v for k, v in sys.modules.items() if k.startswith("pynova")} == before


@pytest.mark.parametrize("kind, bad, shown", [
    ("syntax", "PT_LOAD = = 1", ["    PT_LOAD = = 1\n", "SyntaxError: invalid syntax"]),
    ("import_error", "import no_such_module_here",
     ["    import no_such_module_here\n",
      "ModuleNotFoundError: No module named 'no_such_module_here'"]),
    ("import_raises", "raise RuntimeError('at import')",
     ["    raise RuntimeError('at import')\n", "RuntimeError: at import"]),
])
def test_a_module_that_does_not_import_shows_the_students_traceback(tmp_path, kind, bad, shown):
    path = variant(tmp_path, kind)
    line = (path / STUDENT_FILE).read_text().splitlines().index(bad) + 1
    with pytest.raises(StudentCodeError) as err:
        import_file(path / STUDENT_FILE, "toy", path)
    message = str(err.value)
    assert message.startswith("toy_lab.py does not import:\n")
    where = f'  File "toy_lab.py", line {line}' + ("\n" if kind == "syntax" else
                                                   ", in <module>\n")
    for text in [where, *shown]:
        assert text in message + "\n"
    assert "importlib" not in message and str(tmp_path) not in message


def test_a_traceback_keeps_the_students_frames_and_says_where_pynova_raised(tmp_path):
    path = variant(tmp_path, "raises")
    module = import_file(path / STUDENT_FILE, "toy", path)
    try:
        module.count_load_segments(example_path("hello").read_bytes())
    except ValueError as exc:
        text = student_traceback(exc, [path / STUDENT_FILE], path)
    assert text is not None
    lines = text.splitlines()
    assert lines[0] == "Traceback (your code; pynova's frames left out):"
    assert lines[1].startswith('  File "toy_lab.py", line ') and \
        lines[1].endswith(", in count_load_segments")
    assert lines[2] == "    parse_size('many')"
    assert lines[3].startswith("  (raised inside pynova: pynova/argtypes.py:")
    assert lines[3].endswith(", in parse_size)")
    assert lines[4] == "ValueError: not a memory size: 'many'"
    assert "test_labs_framework" not in text   # the caller's frames are left out


# ------------------------------------------------------------ isolation
def test_isolated_child_returns_a_value_and_its_output_stays_in_the_child(capfd):
    def fn(progress):
        print("from the child")
        os.write(2, b"to stderr\n")
        return {"answer": 42}
    iso = run_isolated(fn, timeout=5, mem_limit=None)
    assert iso.ended == "ok" and iso.value == {"answer": 42}
    assert iso.output == "from the child\nto stderr\n"
    out, err = capfd.readouterr()
    assert "from the child" not in out + err


def test_a_hanging_child_and_its_process_group_are_killed(tmp_path):
    pidfile = tmp_path / "grandchild"

    def fn(progress):
        proc = subprocess.Popen(["sleep", "60"])
        pidfile.write_text(str(proc.pid))
        progress("started")
        while True:
            pass
    start = time.monotonic()
    iso = run_isolated(fn, timeout=0.5, mem_limit=None)
    assert time.monotonic() - start < 5
    assert iso.ended == "timeout" and iso.value is None and iso.progress == "started"
    grandchild = int(pidfile.read_text())
    assert wait_gone(grandchild), "the grandchild survived the process-group kill"


@pytest.mark.parametrize("how, detail", [
    (lambda: os._exit(3), "exit status 3"),
    (lambda: os.kill(os.getpid(), signal.SIGKILL), "killed by SIGKILL"),
    (lambda: os.kill(os.getpid(), signal.SIGSEGV), "killed by SIGSEGV"),
])
def test_a_child_that_dies_is_reported_with_how(how, detail):
    def fn(progress):
        print("last words")
        how()
    iso = run_isolated(fn, timeout=5, mem_limit=None)
    assert (iso.ended, iso.detail, iso.value) == ("died", detail, None)
    assert iso.output == "last words\n"


def test_the_address_space_limit_holds_in_the_child():
    def fn(progress):
        try:
            bytearray(1 << 30)
        except MemoryError:
            return "MemoryError"
        return "allocated"
    assert run_isolated(fn, timeout=5, mem_limit=512 << 20).value == "MemoryError"


def test_only_the_tail_of_a_flood_of_output_is_kept():
    def fn(progress):
        for i in range(100_000):
            print(f"line {i}")
        return 1
    iso = run_isolated(fn, timeout=10, mem_limit=None)
    assert iso.value == 1
    assert len(iso.output) <= 4096 and iso.output.endswith("line 99999\n")


# ---------------------------------------------------------------- checks
def test_the_solution_passes_every_check(tmp_path):
    result = check(solution(tmp_path))
    assert result.to_json() == {
        "lab": "toy", "score": 5, "max_score": 5,
        "checks": [{"name": n, "passed": True, "score": s, "max_score": s, "message": ""}
                   for n, s in (("step 1: count PT_LOAD headers", 2),
                                ("step 2: the greeting", 1),
                                ("step 3: hello runs with the greeting", 2))]}


def test_the_skeleton_fails_each_step_with_a_clear_message(tmp_path):
    checks = by_name(check(skeleton(tmp_path)))
    step1 = checks["step 1: count PT_LOAD headers"]
    assert not step1.passed and step1.score == 0
    assert step1.message.splitlines()[:2] == [
        "your code raised NotImplementedError:",
        "Traceback (your code; pynova's frames left out):"]
    assert step1.message.endswith("NotImplementedError: step 1: read e_phoff, e_phentsize "
                                  "and e_phnum from the ELF header")
    assert checks["step 2: the greeting"].message == \
        "expected: 'toy: starting hello'\ngot:      ''"
    step3 = checks["step 3: hello runs with the greeting"].message
    assert step3.startswith("expected: the kernel to print 'toy: starting hello' before")
    assert step3.endswith("note: this check builds on 'step 2: the greeting', which failed "
                          "too; fix that first")


def test_a_bug_fails_the_check_that_catches_it_and_only_that_one(tmp_path):
    result = check(variant(tmp_path, "buggy"))
    assert [c.passed for c in result.checks] == [False, True, True]
    assert result.checks[0].message == (
        "expected: 2 PT_LOAD headers in hello\ngot:      1\n"
        "why:      count the program headers whose p_type is PT_LOAD (1), all e_phnum of them")
    assert (result.score, result.max_score) == (3, 5)


def test_an_endless_loop_costs_the_checks_it_is_in(tmp_path):
    start = time.monotonic()
    result = check(variant(tmp_path, "hang"), CheckLimits(timeout=0.5))
    assert time.monotonic() - start < 10
    assert [c.passed for c in result.checks] == [True, False, False]
    for c in result.checks[1:]:
        assert c.message.startswith(
            "expected: the check to finish within its 0.5 s limit\n"
            "got:      still running after 0.5 s; stopped it\n"
            "why:      your code probably never returns")


def test_a_runaway_allocation_is_stopped_by_the_address_space_limit(tmp_path):
    result = check(variant(tmp_path, "hog"), CheckLimits(timeout=5, mem_limit=512 << 20))
    first = result.checks[0]
    assert not first.passed
    assert first.message.startswith("your code raised MemoryError:\n")
    assert "hog.append(bytearray(64 << 20))" in first.message
    assert first.message.endswith(
        "why:      the check's process may use 512 MiB of address space (RLIMIT_AS), and "
        "your code asked for more")
    # runs need more than 512 MiB (Unicorn's translation cache): said so plainly
    assert "raise --mem-limit" in result.checks[2].message


@pytest.mark.parametrize("kind, detail, output", [
    ("exits", "exit status 3", "\nits last output:\n  leaving now"),
    ("killed", "killed by SIGKILL", ""),
])
def test_student_code_that_ends_the_process_costs_one_check(tmp_path, kind, detail, output):
    result = check(variant(tmp_path, kind))
    assert [c.passed for c in result.checks] == [False, True, True]
    assert result.checks[0].message == (
        f"expected: the check's process to report a result\n"
        f"got:      it ended ({detail}) without one\n"
        f"why:      something ended the process itself: os._exit, a signal, a crash in "
        f"native code or running out of its 2 GiB of address space (RLIMIT_AS){output}")


def test_code_that_does_not_import_fails_the_first_check_and_skips_the_rest(tmp_path):
    result = check(variant(tmp_path, "syntax"))
    first, *rest = result.checks
    assert first.message.startswith("your code does not load: toy_lab.py does not import:\n")
    assert first.message.endswith("SyntaxError: invalid syntax")
    for c in rest:
        assert c.message == "not run: your code does not load (see 'step 1: count PT_LOAD " \
                            "headers')"
    assert result.score == 0


def test_an_import_that_never_ends_costs_one_time_limit(tmp_path):
    start = time.monotonic()
    result = check(variant(tmp_path, "import_hangs"), CheckLimits(timeout=0.5))
    assert time.monotonic() - start < 5
    assert result.checks[0].message == (
        "your code does not load: importing it did not finish within the check's 0.5 s "
        "limit (an endless loop at import time?)")
    assert result.checks[1].message.startswith("not run: your code does not load")


def test_a_missing_student_file_is_a_load_failure(tmp_path):
    path = solution(tmp_path)
    (path / STUDENT_FILE).unlink()
    result = check(path)
    assert result.checks[0].message == (
        "your code does not load: the workspace has no toy_lab.py (`pynova lab start toy "
        "DIR` writes it)")


# --------------------------------------------------------------- reports
def sample_report() -> LabReport:
    return LabReport("toy", (
        CheckResult("step 1", True, 2, 2, "", 0.25),
        CheckResult("step <2> & more", False, 0.5, 3,
                    "expected: \"a\" & <b>\ngot:      \x1b[31mred\x1b[0m \x00 nul", 0.5),
    ))


def test_the_text_report_has_a_line_per_check_and_a_score():
    assert report.text(sample_report()).splitlines() == [
        "pynova lab toy: 2 checks",
        "PASS    2/2  step 1",
        "FAIL  0.5/3  step <2> & more",
        "      expected: \"a\" & <b>",
        "      got:      \x1b[31mred\x1b[0m \x00 nul",
        "score: 2.5/5 (1 of 2 checks passed)",
    ]


def test_gradescope_results_parse_back():
    data = json.loads(json.dumps(report.gradescope(sample_report())))
    assert data["score"] == 2.5 and data["execution_time"] == 0.75
    assert data["output"] == "pynova lab toy: 2.5/5"
    assert [(t["name"], t["score"], t["max_score"], t["status"], t["visibility"])
            for t in data["tests"]] == [("step 1", 2, 2, "passed", "visible"),
                                        ("step <2> & more", 0.5, 3, "failed", "visible")]
    assert data["tests"][1]["output"].startswith('expected: "a" & <b>')


def test_junit_xml_is_valid_with_a_testsuite_per_submission(tmp_path):
    suites = [report.Suite("alice", sample_report()),
              report.Suite("bob", sample_report(), error="timed out", seconds=9.0)]
    path = tmp_path / "junit.xml"
    path.write_text(report.junit(suites, name="pynova lab toy"))
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "4"
    assert root.get("failures") == "2"
    alice, bob = root.findall("testsuite")
    assert (alice.get("name"), alice.get("tests"), alice.get("failures")) == ("alice", "2", "1")
    assert bob.get("time") == "9.000"
    props = {p.get("name"): p.get("value") for p in bob.iter("property")}
    assert props == {"lab": "toy", "score": "2.5", "max_score": "5", "error": "timed out"}
    cases = alice.findall("testcase")
    assert [c.get("name") for c in cases] == ["step 1", "step <2> & more"]
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message") == 'expected: "a" & <b>'
    assert failure.text == 'expected: "a" & <b>\ngot:      \\x1b[31mred\\x1b[0m \\x00 nul'


# ------------------------------------------------------------------ CLI
def test_lab_check_cli_statuses_and_json(tmp_path):
    sol = solution(tmp_path)
    status, out, err = pynova("lab", "check", str(sol), "--json")
    assert status == 0 and err == ""
    data = json.loads(out)
    assert list(data) == ["lab", "checks", "score", "max_score"]
    assert all(list(c) == ["name", "passed", "score", "max_score", "message"]
               for c in data["checks"])
    status, out, _ = pynova("lab", "check", str(skeleton(tmp_path)))
    assert status == 1
    assert out.splitlines()[1] == "FAIL  0/2  step 1: count PT_LOAD headers"
    assert out.splitlines()[-1] == "score: 0/5 (0 of 3 checks passed)"
    status, out, err = pynova("lab", "check", str(tmp_path))
    assert (status, out) == (2, "")
    assert err == f"pynova lab check: {tmp_path}: not a lab workspace (no .pynova-lab.json; " \
                  f"`pynova lab start LAB DIR` makes one, or give --lab)\n"


def test_lab_check_writes_gradescope_and_junit_files(tmp_path):
    sol = solution(tmp_path)
    gs, junit = tmp_path / "results.json", tmp_path / "junit.xml"
    status, _, _ = pynova("lab", "check", str(sol), "--gradescope", str(gs),
                          "--junit", str(junit))
    assert status == 0
    assert json.loads(gs.read_text())["score"] == 5
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("name") == "solution"
    status, _, err = pynova("lab", "check", str(sol), "--junit", str(tmp_path / "no/x.xml"))
    assert status == 2 and err.startswith("pynova lab check: cannot write ")


def test_lab_cli_usage(tmp_path):
    status, out, _ = pynova("lab", "list")
    assert status == 0
    status, out, _ = pynova("lab", "--help")
    assert status == 0 and "{list,start,check,grade}" in out
    status, out, _ = pynova("--help")
    assert status == 0 and "lab " in out
    status, _, err = pynova("lab", "start", "nope", str(tmp_path / "w"))
    assert status == 2 and err.startswith("pynova lab start: no lab named 'nope' (labs: ")
    for bad in ("0", "inf", "nan", "soon"):
        status, _, err = pynova("lab", "check", "--timeout", bad, str(tmp_path))
        assert status == 2 and "--timeout: " in err, bad
    status, _, err = pynova("lab", "grade", "toy", str(tmp_path), "--mem-limit", "lots")
    assert status == 2 and "--mem-limit: not a memory size: 'lots'" in err
    status, _, err = pynova("lab")
    assert status == 2


def test_the_workspace_file_runs_the_students_code_not_pynovas(tmp_path):
    """The check imports the workspace's file: changing it changes the result."""
    path = solution(tmp_path)
    assert check(path).passed
    file = path / STUDENT_FILE
    file.write_text(file.read_text().replace("toy: starting", "toy: launching"))
    assert [c.passed for c in check(path).checks] == [True, False, False]
    assert Workspace(path, "toy").file(STUDENT_FILE) == file
