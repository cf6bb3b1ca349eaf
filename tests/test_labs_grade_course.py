"""A class graded across the course's real labs (issue 12): 30 submissions
of elf, ptab, brk, malloc and threads, as directories and archives, correct,
buggy, hanging, crashing and not loading, each graded by `pynova lab grade`
with its score and reason. Small limits keep the batch fast; its wall time
is printed (not asserted: speed is for benchmarks)."""

from __future__ import annotations

import json
import sys
import tarfile
import time
import zipfile
from pathlib import Path

from conftest import needs_toolchain
from labkit import lab_workspace, pynova

pytestmark = needs_toolchain

#: (name, kind, edits) per lab; kind: dir, zip, tgz, tar, or file (the
#: student's file alone, no workspace metadata).
ELF = [
    ("ada", "dir", ()),
    ("brian", "zip", ()),
    ("carol", "tgz", (("k.insert_mappings(run.virt, k.frames(run), run.attr)",
                       "k.insert_mappings(run.virt, k.frames(run), run.attr & ~USER)"),)),
    ("dave", "skeleton", ()),
    ("erin", "dir", (("    eh = check_header(k.image)", "    eh = check_header(k.image"),)),
    # an endless loop for a file that is not ELF: one check's time runs out
    ("frank", "dir", (("    eh = check_header(k.image)",
                       "    while k.image[:4] != b'\\x7fELF':\n        pass\n"
                       "    eh = check_header(k.image)"),)),
]
PTAB = [
    ("gina", "dir", ()),
    ("hank", "zip", (("        pde = pt.alloc_zeroed_frame() | PRESENT",
                      "        pde = pt.alloc_frame() | PRESENT"),)),
    # the process ends in every check that maps a page
    ("ivy", "dir", (("    pde_addr = pt.root", "    import os\n    os._exit(3)\n"
                                              "    pde_addr = pt.root"),)),
    ("jack", "dir", (("((virt >> 22) & 0x3FF) * 4", "((virt >> 20) & 0x3FF) * 4"),)),
    ("kate", "file", ()),
]
GROW = "    page, end = align_up(old), align_up(new_break)"
ROLLBACK = "    except OutOfMemory:\n        shrink(heap, old, page)\n        return False"
BRK = [
    ("liam", "dir", ()),
    ("mia", "zip", (("frame = heap.alloc_zeroed_frame()", "frame = heap.alloc_frame()"),)),
    ("noah", "dir", ((ROLLBACK, "    except OutOfMemory:\n        return False"),)),
    ("olga", "tgz", ((GROW, "    page, end = align_up(old), new_break & ~(PAGE_SIZE - 1)"),)),
    # an endless loop when the frames run out: three checks' time runs out
    ("pete", "dir", ((ROLLBACK, "    except OutOfMemory:\n        while page > old:\n"
                                "            pass\n        return False"),)),
    ("quin", "dir", (("    heap.brk = new_break\n    return old", "    heap.brk = new_break"),)),
    ("rosa", "dir", (("from pynova.kernel.pd import Heap\n",
                      "from pynova.kernel.pd import Heap, Stack\n"),)),
    ("sam", "tar", (("    old = heap.brk\n", "    old = nbrk(heap, new_break)\n"),)),
]
MALLOC = [
    ("amy", "dir", ()),
    ("bob", "dir", (("    set_block(b, bsize(b), 0);\n    b = coalesce(b);\n    list_push(b);\n"
                     "    trim(b);\n", ""),)),
    ("cid", "zip", ()),
    ("dan", "dir", (("    return payload(b);\n}", "    return payload(b)\n}"),)),
]
ROTATE = "    threads.ready.rotate(-1)"
QUEUE = "    threads.ready.insert(1, threads.new_thread(eip, stack_top))"
THREADS = [
    ("tina", "dir", ()),
    ("uma", "zip", ((QUEUE, "    threads.ready.append(threads.new_thread(eip, stack_top))"),)),
    ("vic", "dir", ((ROTATE, "    pass"),)),
    ("walt", "dir", ((ROTATE, "    old = threads.ready.popleft()\n    threads.ready.append("
                              "threads.new_thread(old.regs.eip, old.regs.esp))"),)),
    # a yield that never returns: the whole submission's time runs out
    ("xena", "dir", ((ROTATE, "    while True:\n        pass"),)),
    ("yuri", "tgz", ((QUEUE, "    import os, signal\n    os.kill(os.getpid(), signal.SIGKILL)"),)),
    ("zoe", "dir", ((QUEUE, "    threads.ready.insert(1, threads.new_thread(eip, "
                            "threads.current.regs.esp))"),)),
]
#: lab: (its submissions, the per-submission time limit)
CLASS = {"elf": (ELF, 20), "ptab": (PTAB, 20), "brk": (BRK, 20), "malloc": (MALLOC, 90),
         "threads": (THREADS, 6)}

#: name: (score, error); None: no error (graded check by check)
EXPECTED = {
    "elf": {"ada": 13, "brian": 13, "carol": 5, "dave": 0,
            "erin": (0, "your code does not load: SyntaxError: '(' was never closed"),
            "frank": 12},
    "ptab": {"gina": 11, "hank": 6, "ivy": 0, "jack": 2, "kate": 11},
    "brk": {"liam": 12, "mia": 4, "noah": 7, "olga": 3, "pete": 7, "quin": 1,
            "rosa": (0, "your code does not load: ImportError: cannot import name 'Stack' "
                        "from 'pynova.kernel.pd' (/PYNOVA/kernel/pd.py)"),
            "sam": 1},
    "malloc": {"amy": 13, "bob": 7, "cid": 13, "dan": (0, "your code does not load: "
                                                          "malloc.c does not compile")},
    "threads": {"tina": 10, "uma": 7, "vic": 3, "walt": 3,
                "xena": (0, "timed out: no report within 6 s"), "yuri": 2, "zoe": 3},
}


def submission(root: Path, lab: str, name: str, kind: str,
               edits: tuple[tuple[str, str], ...]) -> Path:
    """A student's submission as a teacher gets it."""
    work = root / "work" / lab
    path = lab_workspace(work, lab, name, edits, solution=kind != "skeleton")
    subs = root / "subs" / lab
    subs.mkdir(parents=True, exist_ok=True)
    if kind in ("dir", "skeleton"):
        return path
    if kind == "file":
        only = subs / name
        only.mkdir()
        for f in path.iterdir():
            if f.suffix in (".py", ".c"):
                (only / f.name).write_text(f.read_text())
        return only
    if kind == "zip":
        target = subs / f"{name}.zip"
        with zipfile.ZipFile(target, "w") as zf:
            for f in path.iterdir():
                zf.write(f, f"{name}-{lab}/{f.name}")
        return target
    target = subs / f"{name}.{kind}"
    with tarfile.open(target, "w:gz" if kind == "tgz" else "w") as tf:
        for f in path.iterdir():
            tf.add(f, f.name)
    return target


def test_a_class_across_the_course_labs_is_graded(tmp_path):
    batches = {lab: [submission(tmp_path, lab, *s) for s in subs]
               for lab, (subs, _limit) in CLASS.items()}
    assert sum(len(b) for b in batches.values()) == 30
    got: dict[str, dict[str, object]] = {}
    messages: dict[str, dict[str, list[str]]] = {}
    start = time.monotonic()
    for lab, paths in batches.items():
        limit = CLASS[lab][1]
        out = tmp_path / "out" / lab
        status, stdout, stderr = pynova(
            "lab", "grade", lab, *map(str, paths), "--jobs", "2", "--timeout", str(limit),
            "--out", str(out), "--junit", str(tmp_path / f"{lab}.xml"), timeout=300)
        assert status == 0, stderr
        assert len(stderr.splitlines()) == len(paths)        # a progress line each
        data = json.loads(stdout)
        assert data["lab"] == lab
        here = str(Path(__file__).resolve().parents[1] / "pynova")
        got[lab] = {}
        for s in data["submissions"]:
            error = s["error"].replace(here, "/PYNOVA") if s["error"] else None
            got[lab][s["name"]] = s["score"] if error is None else (s["score"], error)
            messages[s["name"]] = {c["name"]: c["message"] for c in s["checks"]}
            results = json.loads((out / s["name"] / "results.json").read_text())
            assert results["score"] == s["score"]
    elapsed = time.monotonic() - start
    print(f"graded 30 submissions of 5 labs in {elapsed:.1f} s", file=sys.stderr)
    # compiler messages differ in their details: compare how they begin
    dan = got["malloc"]["dan"]
    assert isinstance(dan, tuple) and dan[1].startswith(EXPECTED["malloc"]["dan"][1])
    got["malloc"]["dan"] = EXPECTED["malloc"]["dan"]
    assert got == EXPECTED

    # the reasons a check gives, for a few of them
    assert "still running after 2 s" in messages["frank"][
        "step 1: a file that is not an i386 executable is an ELF error"]
    assert all("ended (exit status 3)" in m or "not run" in m for m in messages["ivy"].values())
    assert "kalloc's junk" in messages["mia"]["step 2: growing maps fresh zeroed user pages "
                                              "(PTEs read back)"]
    assert "still running after 2 s" in messages["pete"][
        "out of memory at 16 MiB: a failed grow leaves everything exactly as it was"]
    assert "it raised RecursionError" in messages["sam"][
        "step 2: growing maps fresh zeroed user pages (PTEs read back)"]
    assert "the course's rule puts it right after its creator" in messages["uma"][
        "a yield right after a create runs the newest thread"]
    assert all("killed by SIGKILL" in m for name, m in messages["yuri"].items()
               if "thr_create" in name or "newest" in name)
    assert "the stack is the creator's" in messages["zoe"][
        "step 2: thr_create returns 0; the new thread starts at eip with esp = stack_top"]
