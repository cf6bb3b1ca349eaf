"""pynova.run: the autograder API."""

from __future__ import annotations

import resource
import subprocess
import sys

import pynova
from pynova.toolchain import build_program, example_path

from conftest import needs_toolchain


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


def test_import_pynova_stays_cheap():
    code = "import sys, pynova; print('pynova.api' in sys.modules, 'pynova.runner' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.split() == ["False", "False"]


def test_result_fields():
    r = pynova.run(example_path("pagefault"), count_instructions=True)
    assert (r.status, r.reason) == (139, "fault")
    f = r.fault
    assert (f.vector, f.cr2, f.error_code) == (14, 0x234, 0x6)
    assert r.instructions == 2  # _start's call, then main's faulting store
    assert [(m.virt, m.end, m.flag_text) for m in r.maps] == [
        (0x1000, 0x2000, "P RW US A D"),   # the stack page: the call pushed
        (0x2000, 0x3000, "P RW US - -"),   # data, never touched
        (0x3000, 0x4000, "P -- US A -")]   # text, fetched
    assert "why: write to an unmapped page" in r.output
    assert r.program_output == b""


def test_bytes_names_and_limits():
    r = pynova.run(example_path("exit42").read_bytes())
    assert (r.status, r.reason, r.fault) == (42, "exit", None) and "bye" in r.output
    assert pynova.run(b"not an elf").status == 126
    spin = pynova.run("example:spin", max_insns=5000)
    assert (spin.status, spin.instructions) == (124, 5000)


def test_a_bare_name_is_a_path_never_a_bundled_example(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = pynova.run("hello")
    assert (r.status, r.reason, r.output) == (127, "not_found", "")
    assert r.message == ("hello: No such file or directory "
                         "(a bundled example is example:hello)")
    mine = tmp_path / "hello"
    mine.write_bytes(example_path("exit42").read_bytes())
    assert pynova.run("hello").status == 42  # the student's file, not pynova's hello


def test_unreadable_programs_give_status_127_not_exceptions(tmp_path):
    cases = {str(tmp_path): "Is a directory",
             str(tmp_path / "missing.elf"): "No such file or directory",
             "example:no-such-example": "unknown example 'no-such-example'"}
    for program, reason in cases.items():
        r = pynova.run(program)
        assert (r.status, r.reason, r.fault, r.program_output) == (127, "not_found", None, b"")
        assert reason in r.message and program in r.message, r.message
    assert pynova.run(tmp_path / "missing.elf").status == 127  # a Path too


def test_program_output_is_the_programs_bytes_alone():
    r = pynova.run("example:hello")
    assert r.program_output == b"Hello world!\n"
    assert r.output.startswith("pynova ") and "User EXC 0x6" in r.output
    bad = pynova.run("example:badprint")   # kernel lines between the program's
    assert b"print: bad buffer" not in bad.program_output
    assert bad.program_output == b"print(kernel) = -1\nprint(unmapped) = -1\n"
    threads = pynova.run("example:threads").program_output.decode().splitlines()
    assert threads[:3] == ["main step 0 (EC 0)", "B step 0 (EC 2)", "A step 0 (EC 1)"]


BYTES_C = r"""#include "pynova.h"
int main(void)
{
    static const char all[] = "\x00\x01\xff\xfe\r\n\xc3\xa9 caf\xe9\n";
    print(all, sizeof all - 1);
    print("", 0);
    printf("%s|%c", "tail", 0x80);
    exit(0);
}
"""
EXPECTED_BYTES = b"\x00\x01\xff\xfe\r\n\xc3\xa9 caf\xe9\ntail|\x80"


@needs_toolchain
def test_program_output_is_byte_for_byte_in_the_api_and_with_quiet(tmp_path):
    source = tmp_path / "bytes.c"
    source.write_text(BYTES_C)
    program = build_program([source], tmp_path / "bytes")
    assert pynova.run(program).program_output == EXPECTED_BYTES
    quiet = subprocess.run([sys.executable, "-m", "pynova", "run", "--quiet", str(program)],
                           capture_output=True, timeout=60)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, EXPECTED_BYTES, b"")
    loud = subprocess.run([sys.executable, "-m", "pynova", "run", str(program)],
                          capture_output=True, timeout=60)
    assert EXPECTED_BYTES in loud.stdout  # the kernel's lines around it, the bytes intact


def test_200_runs_identical_output_and_flat_memory():
    image = example_path("hello").read_bytes()
    first = pynova.run(image)
    for _ in range(20):  # warm-up: caches, allocator arenas
        pynova.run(image)
    before = rss_kib()
    outputs = {pynova.run(image).output for _ in range(200)}
    grown = rss_kib() - before
    assert outputs == {first.output}
    assert grown < 8 * 1024, f"RSS grew by {grown} KiB over 200 runs"
