"""pynova maps: ranges from the page tables in guest RAM, and the SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from pynova.kernel.loader import plan
from pynova.kernel.ptab import PRESENT, RW, USER
from pynova.toolchain import example_path
from pynova.tools.maps import AddressSpace, format_space, inspect
from pynova.tools.svg import render

from conftest import pynova_cli

SVG = "{http://www.w3.org/2000/svg}"


def hello_space(at: str = "start") -> AddressSpace:
    image = example_path("hello").read_bytes()
    space, _outcome, _output = inspect([(image, "hello")], at=at, mem_size=8 << 20)
    return space


def test_hello_lists_exactly_the_loaded_pages_with_their_flags():
    image = example_path("hello").read_bytes()
    runs = plan(image).runs
    space = hello_space()
    listed = {virt: r.flags for r in space.ranges for virt in range(r.virt, r.end, 4096)}
    assert listed == {virt: run.attr for run in runs for virt in range(run.virt, run.end, 4096)}
    assert listed[0x1000] == PRESENT | RW | USER   # data page (and the stack below 0x2000)
    assert listed[0x2000] == PRESENT | USER        # text: read-only
    assert [r.phys for r in space.ranges] == [0x107000, 0x108000]  # the module's own frames


def test_accessed_and_dirty_bits_after_the_run():
    space = hello_space("exit")
    flags = {r.virt: r.flag_text for r in space.ranges}
    assert flags[0x1000] == "P RW US A D"   # the stack was written
    assert flags[0x2000] == "P -- US A -"   # text was fetched, never written


def test_format_has_qemu_style_lines_and_heap_and_threads():
    text = "\n".join(format_space(hello_space()))
    assert "0x00001000-0x00002000  0x00107000-0x00108000     0x1000  P RW US - -" in text
    assert "heap: break 0x00003000" in text
    assert "thread 0: stack top 0x00002000" in text


def test_svg_is_well_formed_and_contains_the_ranges(tmp_path):
    space = hello_space()
    root = ET.fromstring(render(space, "hello"))
    assert root.tag == f"{SVG}svg"
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    for r in space.ranges:
        assert f"{r.virt:#010x}-{r.end - 1:#010x}" in texts      # virtual box
        assert f"{r.phys:#010x}-{r.phys + r.size - 1:#010x}" in texts  # physical box
    assert len(list(root.iter(f"{SVG}line"))) == len(space.ranges)  # one arrow each
    assert any("page directory" in t for t in texts)


def test_cli_maps_at_fault_with_svg(tmp_path):
    picture = tmp_path / "pf.svg"
    result = pynova_cli("maps", "pagefault", "--at", "fault", "--svg", str(picture))
    assert result.returncode == 0, result.stderr
    assert "after the task ended (fault: Page Fault)" in result.stdout
    ET.parse(picture)
    assert pynova_cli("maps", "exit42", "--at", "fault").returncode == 1
