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


def hello_pages() -> tuple[int, int, int]:
    """(stack, data, text) page of hello, from the loader's plan."""
    loaded = plan(example_path("hello").read_bytes())
    data, text = (next(run.virt for run in loaded.runs if bool(run.attr & RW) == rw)
                  for rw in (True, False))
    return loaded.stack_page, data, text


def test_hello_lists_exactly_the_loaded_pages_with_their_flags():
    image = example_path("hello").read_bytes()
    loaded = plan(image)
    stack, data, text = hello_pages()
    space = hello_space()
    listed = {virt: r.flags for r in space.ranges for virt in range(r.virt, r.end, 4096)}
    assert listed == {virt: run.attr for run in loaded.runs
                      for virt in range(run.virt, run.end, 4096)} | {stack: PRESENT | RW | USER}
    assert (stack, data, text) == (0x1000, 0x2000, 0x3000)  # the seed's map
    assert listed[data] == PRESENT | RW | USER
    assert listed[text] == PRESENT | USER        # text: read-only
    phys = {r.virt: r.phys for r in space.ranges}
    assert [phys[data], phys[text]] == [0x107000, 0x108000]  # the module's own frames
    assert phys[stack] not in range(0x107000, 0x107000 + len(image))  # a fresh frame


def test_accessed_and_dirty_bits_after_the_run():
    stack, data, text = hello_pages()
    space = hello_space("exit")
    flags = {r.virt: r.flag_text for r in space.ranges}
    assert flags[stack] == "P RW US A D"   # the stack was written
    assert flags[data] == "P RW US - -"    # only the kernel read the string (no A bit)
    assert flags[text] == "P -- US A -"    # text was fetched, never written


def test_format_has_qemu_style_lines_and_heap_and_threads():
    stack, data, text = hello_pages()
    text_lines = "\n".join(format_space(hello_space()))
    assert (f"{data:#010x}-{data + 0x1000:#010x}  0x00107000-0x00108000     0x1000  "
            f"P RW US - -") in text_lines
    assert f"heap: break {text + 0x1000:#010x}" in text_lines
    assert f"thread 0: stack top {stack + 0x1000:#010x}" in text_lines


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
    result = pynova_cli("maps", "example:pagefault", "--at", "fault", "--svg", str(picture))
    assert result.returncode == 0, result.stderr
    assert "after the task ended (fault: Page Fault)" in result.stdout
    ET.parse(picture)
    assert pynova_cli("maps", "example:exit42", "--at", "fault").returncode == 1


def test_cli_maps_svg_path_errors_are_one_line(tmp_path):
    cases = {str(tmp_path / "missing" / "x.svg"): "no such directory",
             str(tmp_path): "is a directory"}
    for target, reason in cases.items():
        result = pynova_cli("maps", "example:hello", "--svg", target)
        assert (result.returncode, result.stdout) == (74, ""), result
        assert result.stderr.count("\n") == 1 and reason in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
