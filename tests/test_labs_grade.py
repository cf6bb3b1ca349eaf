"""``pynova lab grade``: archives unpacked safely (hostile ones refused),
and a batch of mixed submissions graded in parallel, every one to a result."""

from __future__ import annotations

import io
import json
import stat
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from pynova.labs import archive
from pynova.labs.grade import (
    Graded,
    GradeOptions,
    Progress,
    _Job,
    _result,
    _run_all,
    parse_report,
)

from labkit import STUDENT_FILE, pynova, solution, toy_lab, variant, wait_gone

LAB_NAMES = [("step 1: count PT_LOAD headers", 2), ("step 2: the greeting", 1),
             ("step 3: hello runs with the greeting", 2)]


# --------------------------------------------------------------- archives
def make_zip(path: Path, members: dict[str, bytes], *, links: dict[str, str] | None = None,
             mode: int | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.external_attr = mode << 16
            zf.writestr(info, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def make_tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz" if path.name.endswith("gz") else "w") as tf:
        for info in members:
            payload = data.get(info.name)
            if payload is not None:
                info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def tar_member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def test_a_zip_with_one_top_folder_unpacks_to_that_folder(tmp_path):
    z = make_zip(tmp_path / "alice.zip", {"alice-lab/toy_lab.py": b"x = 1\n",
                                          "alice-lab/README.md": b"hi\n",
                                          "__MACOSX/alice-lab/._toy_lab.py": b"junk"})
    got = archive.extract(z, tmp_path / "out")
    assert got == tmp_path / "out" / "alice-lab"
    assert (got / "toy_lab.py").read_text() == "x = 1\n"
    assert not (tmp_path / "out" / "__MACOSX").exists()
    assert archive.stem(z) == "alice" and archive.stem(Path("bob.tar.gz")) == "bob"


def test_a_flat_tar_gz_unpacks_in_place(tmp_path):
    t = make_tar(tmp_path / "bob.tgz", [tar_member("toy_lab.py"), tar_member("notes.txt")],
                 {"toy_lab.py": b"y = 2\n", "notes.txt": b"n\n"})
    got = archive.extract(t, tmp_path / "out")
    assert got == tmp_path / "out"
    assert sorted(p.name for p in got.iterdir()) == ["notes.txt", "toy_lab.py"]


@pytest.mark.parametrize("build, reason", [
    (lambda d: make_zip(d / "a.zip", {"/etc/evil": b"x"}),
     "member '/etc/evil' has an absolute path"),
    (lambda d: make_zip(d / "a.zip", {"ok/../../evil": b"x"}),
     "member 'ok/../../evil' leads out of the submission ('..')"),
    (lambda d: make_zip(d / "a.zip", {"a\\..\\..\\evil": b"x"}),
     "leads out of the submission ('..')"),
    (lambda d: make_zip(d / "a.zip", {"toy_lab.py": b"x"}, links={"link": "/etc/passwd"}),
     "member 'link' is a symbolic link, not a file"),
    (lambda d: make_zip(d / "a.zip", {"fifo": b""}, mode=stat.S_IFIFO | 0o644),
     "member 'fifo' is a fifo, not a file"),
    (lambda d: make_zip(d / "a.zip", {f"f{i}": b"" for i in range(1001)}),
     "too many members (1001 > 1000)"),
    (lambda d: make_zip(d / "a.zip", {"zeros": bytes(65 << 20)}),
     "too large (68157440 bytes unpacked > 67108864)"),
    (lambda d: make_tar(d / "a.tar", [tar_member("link", tarfile.SYMTYPE, "/etc")], {}),
     "member 'link' is a symbolic link, not a file"),
    (lambda d: make_tar(d / "a.tar", [tar_member("toy_lab.py"),
                                      tar_member("hard", tarfile.LNKTYPE, "toy_lab.py")],
                        {"toy_lab.py": b"x"}),
     "member 'hard' is a hard link, not a file"),
    (lambda d: make_tar(d / "a.tar.gz", [tar_member("dev", tarfile.CHRTYPE)], {}),
     "member 'dev' is a device or fifo, not a file"),
    (lambda d: make_tar(d / "a.tar", [tar_member("../up")], {"../up": b"x"}),
     "member '../up' leads out of the submission"),
    (lambda d: make_tar(d / "a.tar", [tar_member("/abs")], {"/abs": b"x"}),
     "member '/abs' has an absolute path"),
    (lambda d: (d / "a.zip").write_bytes(b"PK\x03\x04 not really") and d / "a.zip",
     "not a readable archive: "),
    (lambda d: (d / "a.tar.gz").write_bytes(b"\x1f\x8b garbage") and d / "a.tar.gz",
     "not a readable archive: "),
])
def test_hostile_and_broken_archives_are_refused_before_anything_is_written(
        tmp_path, build, reason):
    path = build(tmp_path)
    with pytest.raises(archive.ArchiveError) as err:
        archive.extract(path, tmp_path / "out")
    assert reason in str(err.value)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))
    assert not (tmp_path / "evil").exists()


def test_the_sizes_claimed_are_bounded_and_so_are_the_bytes_written(tmp_path):
    z = make_zip(tmp_path / "a.zip", {"a": bytes(3000), "b": bytes(3000)})
    with pytest.raises(archive.ArchiveError, match="too large \\(6000 bytes unpacked > 5000"):
        archive.extract(z, tmp_path / "out", archive.Bounds(max_bytes=5000))
    # a member whose header lies about its size is stopped while it is written
    liar = archive._Member(PurePosixPath("liar"), False, 10, lambda: io.BytesIO(bytes(9000)))
    with pytest.raises(archive.ArchiveError, match="too large: unpacking 'liar' passes 5000"):
        archive._write([liar], tmp_path / "out2", archive.Bounds(max_bytes=5000))


# ------------------------------------------------------------ the batch
def build_batch(root: Path) -> list[Path]:
    """Submissions of every kind, as a teacher gets them."""
    subs = root / "subs"
    subs.mkdir()
    ok = solution(subs, "ada")
    zipped = solution(root, "brian")
    with zipfile.ZipFile(subs / "brian.zip", "w") as zf:
        for f in zipped.iterdir():
            zf.write(f, f"brian-work/{f.name}")
    buggy = variant(root, "buggy", "carol")
    with tarfile.open(subs / "carol.tar.gz", "w:gz") as tf:
        tf.add(buggy / STUDENT_FILE, STUDENT_FILE)
    only_file = subs / "dave"            # the student file alone, no workspace metadata
    only_file.mkdir()
    (only_file / STUDENT_FILE).write_text((ok / STUDENT_FILE).read_text())
    hostile = make_zip(subs / "eve.zip", {"../../escape.py": b"x"})
    with tarfile.open(subs / "empty.tar", "w"):
        pass
    other_lab = solution(subs, "judy")
    (other_lab / ".pynova-lab.json").write_text('{"lab": "elf"}')
    return [ok, subs / "brian.zip", subs / "carol.tar.gz", only_file,
            variant(subs, "hang", "frank"), variant(subs, "exits", "grace"),
            variant(subs, "syntax", "heidi"), variant(subs, "import_hangs", "ivan"),
            hostile, subs / "empty.tar", other_lab]


def test_a_mixed_batch_is_graded_in_parallel_and_every_submission_gets_a_result(tmp_path):
    subs = build_batch(tmp_path)
    out, summary, junit = tmp_path / "out", tmp_path / "summary.json", tmp_path / "junit.xml"
    start = time.monotonic()
    status, stdout, stderr = pynova(
        "lab", "grade", str(toy_lab().origin), *map(str, subs), "--jobs", "2",
        "--check-timeout", "1", "--timeout", "20", "--out", str(out), "--json", str(summary),
        "--junit", str(junit), timeout=100)
    elapsed = time.monotonic() - start
    assert status == 0, stderr
    assert stdout == ""
    data = json.loads(summary.read_text())
    assert data["lab"] == "toy" and data["max_score"] == 5
    got = {s["name"]: (s["score"], s["error"]) for s in data["submissions"]}
    assert got == {
        "ada": (5, None),
        "brian": (5, None),
        "carol": (3, None),
        "dave": (5, None),
        "frank": (2, None),            # steps 2 and 3 hit the 1 s limit
        "grace": (3, None),            # step 1 ended the process
        "heidi": (0, "your code does not load: SyntaxError: invalid syntax"),
        "ivan": (0, "your code does not load: importing it did not finish within the "
                    "check's 1 s limit (an endless loop at import time?)"),
        "eve": (0, "archive refused: member '../../escape.py' leads out of the submission "
                   "('..')"),
        "empty": (0, "your code does not load: the workspace has no toy_lab.py "
                     "(`pynova lab start toy DIR` writes it)"),
        "judy": (0, f"pynova lab check: {subs[-1].parent / 'judy'}: a workspace of lab "
                    f"elf, not toy"),
    }
    frank = next(s for s in data["submissions"] if s["name"] == "frank")
    assert [c["passed"] for c in frank["checks"]] == [True, False, False]
    assert "still running after 1 s" in frank["checks"][1]["message"]
    eve = next(s for s in data["submissions"] if s["name"] == "eve")
    assert [c["name"] for c in eve["checks"]] == [n for n, _ in LAB_NAMES]
    assert all(c["message"].startswith("not graded: archive refused") for c in eve["checks"])

    # the progress: one plain line per submission (stderr is not a terminal)
    progress = stderr.splitlines()
    assert len(progress) == len(subs)
    assert progress[-1].startswith(f"graded {len(subs)}/{len(subs)} (")
    assert sorted(int(line.split()[1].split("/")[0]) for line in progress) == \
        list(range(1, len(subs) + 1))

    # Gradescope's results.json, one per submission
    for name, (score, _) in got.items():
        results = json.loads((out / name / "results.json").read_text())
        assert results["score"] == score and len(results["tests"]) == 3
    # JUnit: a testsuite per submission, a testcase per check
    root = ET.parse(junit).getroot()
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == set(got)
    assert [c.get("name") for c in suites["carol"].findall("testcase")] == \
        [n for n, _ in LAB_NAMES]
    assert suites["carol"].get("failures") == "1"
    print(f"graded {len(subs)} submissions in {elapsed:.2f} s", file=sys.stderr)


# ------------------------------------------- what the check process does
def run_fake(tmp_path: Path, script: str, timeout: float = 10) -> _Job:
    """Drive one job whose "check process" is ``python -c script``."""
    job = _Job(0, "fake", tmp_path, tmp_path)
    done: list[_Job] = []
    _run_all([job], 1, timeout, [sys.executable, "-c", script], 2 << 30, tmp_path,
             done.append)
    assert done == [job]
    return job


def test_a_check_process_that_hangs_is_killed_with_its_group(tmp_path):
    start = time.monotonic()
    script = ("import subprocess, time; "
              f"p = subprocess.Popen(['sleep', '60']); open({str(tmp_path / 'pid')!r}, 'w')"
              ".write(str(p.pid)); time.sleep(60)")
    job = run_fake(tmp_path, script, timeout=1.0)
    assert time.monotonic() - start < 10
    assert job.problem == "timed out: no report within 1 s"
    grandchild = int((tmp_path / "pid").read_text())
    assert wait_gone(grandchild), "the check process's child survived"


def test_a_check_process_that_floods_stdout_is_stopped(tmp_path):
    job = run_fake(tmp_path, "import sys\nwhile True: sys.stdout.write('x' * 65536)")
    assert job.problem == "printed more than 8 MiB instead of a report"


@pytest.mark.parametrize("script, error", [
    ("print('garbage')", "the check process printed no valid report (not JSON)"),
    ("import os, signal; print('{'); os.kill(os.getpid(), signal.SIGSEGV)",
     "the check process ended (killed by SIGSEGV)"),
    ("import sys; sys.stderr.write('traceback...\\nBoom: it broke\\n'); sys.exit(70)",
     "the check process ended (exit status 70): Boom: it broke"),
])
def test_a_check_process_that_crashes_or_prints_garbage_gives_zero(tmp_path, script, error):
    graded = _result(toy_lab(), run_fake(tmp_path, script), LAB_NAMES)
    assert graded.error == error
    assert graded.report.score == 0 and graded.report.max_score == 5
    assert all(c.message == f"not graded: {error}" for c in graded.report.checks)


def test_what_a_check_process_printed_must_be_the_report_asked_for():
    good = {"lab": "toy", "checks": [{"name": n, "passed": True, "score": m, "max_score": m,
                                      "message": ""} for n, m in LAB_NAMES],
            "score": 5, "max_score": 5}
    assert parse_report(json.dumps(good), "toy", LAB_NAMES).score == 5
    bad = [("garbage", "not JSON"), (json.dumps(good | {"lab": "elf"}), "not a report of lab"),
           (json.dumps(good | {"checks": good["checks"][:2]}), "expected 3 checks"),
           (json.dumps(good | {"checks": good["checks"][::-1]}),
            "expected the check 'step 1: count PT_LOAD headers'")]
    for text, reason in bad:
        with pytest.raises(ValueError, match=reason):
            parse_report(text, "toy", LAB_NAMES)
    # a report cannot claim more than a check is worth
    inflated = json.loads(json.dumps(good))
    inflated["checks"][0] |= {"passed": False, "score": 100}
    assert parse_report(json.dumps(inflated), "toy", LAB_NAMES).checks[0].score == 2


def test_grade_usage_errors(tmp_path):
    status, _, err = pynova("lab", "grade", str(toy_lab().origin), str(tmp_path / "nope"))
    assert status == 2
    assert err == f"pynova lab grade: {tmp_path / 'nope'}: no such file or directory\n"
    status, _, err = pynova("lab", "grade", "nolab", str(tmp_path))
    assert status == 2 and err.startswith("pynova lab grade: no lab named 'nolab'")
    assert GradeOptions("toy").jobs == 0


def test_the_progress_line_is_rewritten_on_a_terminal_and_plain_otherwise():
    report = parse_report(json.dumps({"lab": "toy", "checks": [
        {"name": n, "passed": True, "score": m, "max_score": m, "message": ""}
        for n, m in LAB_NAMES]}), "toy", LAB_NAMES)
    graded = Graded("alice", Path("alice"), report, None, 0.5)
    failed = Graded("bob", Path("bob.zip"), report, "archive refused: links", 0.0)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True
    for stream, expected in (
            (io.StringIO(), "graded 1/2 (alice: 5/5)\n"
                            "graded 2/2 (bob: 5/5, archive refused: links)\n"),
            (Terminal(), "\r\x1b[Kgraded 1/2 (alice: 5/5)"
                         "\r\x1b[Kgraded 2/2 (bob: 5/5, archive refused: links)\n")):
        progress = Progress(stream)
        progress(1, 2, graded)
        progress(2, 2, failed)
        assert stream.getvalue() == expected
