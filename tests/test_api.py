"""pynova.run: the autograder API."""

from __future__ import annotations

import resource
import subprocess
import sys

import pynova
from pynova.toolchain import example_path


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
        (0x1000, 0x2000, "P RW US A D"), (0x2000, 0x3000, "P -- US A -")]
    assert "why: write to an unmapped page" in r.output


def test_bytes_names_and_limits():
    r = pynova.run(example_path("exit42").read_bytes())
    assert (r.status, r.reason, r.fault) == (42, "exit", None) and "bye" in r.output
    assert pynova.run(b"not an elf").status == 126
    spin = pynova.run("spin", max_insns=5000)
    assert (spin.status, spin.instructions) == (124, 5000)


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
