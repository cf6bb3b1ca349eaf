"""pynova readelf: the same numbers as binutils readelf -h -l, planned
pages and loader verdicts."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from pynova.toolchain import example_path, list_examples
from pynova.tools.readelf import report

from conftest import pynova_cli, symbol

EXAMPLES = [name for name, _ in list_examples()]
HEADER_RE = re.compile(r"^  ([A-Za-z][A-Za-z /-]+):\s+(.*)$")
PH_RE = re.compile(r"^  (\w+)\s+(0x[0-9a-f]+) (0x[0-9a-f]+) (0x[0-9a-f]+) (0x[0-9a-f]+) "
                   r"(0x[0-9a-f]+) (.{3}) (0x[0-9a-f]+)$")


def numbers(text: str) -> tuple[list[tuple[str, str]], list[tuple[str, ...]]]:
    """Header fields (label, value) and program-header rows, parsed alike
    from binutils' output and ours."""
    fields, rows = [], []
    for line in text.splitlines():
        if m := PH_RE.match(line):
            rows.append(m.groups()[:6] + (m.group(7).strip(), m.group(8)))
        elif (m := HEADER_RE.match(line)) and not line.startswith("  Type "):
            fields.append((m.group(1), m.group(2).strip()))
    return fields, rows


@pytest.mark.skipif(shutil.which("readelf") is None, reason="binutils readelf not installed")
@pytest.mark.parametrize("name", EXAMPLES)
def test_numbers_equal_binutils_readelf(name):
    path = example_path(name)
    theirs = subprocess.run(["readelf", "-h", "-l", str(path)], check=True,
                            capture_output=True, text=True).stdout
    ours, accepted = report(path.read_bytes())
    assert accepted
    their_fields, their_rows = numbers(theirs.split("Program Headers:")[0] + "Program Headers:"
                                       + theirs.split("Program Headers:")[1].split("\n\n")[0])
    our_fields, our_rows = numbers("\n".join(ours))
    assert our_rows == their_rows and our_rows
    assert our_fields == their_fields
    assert len(our_fields) == 19  # Magic .. Section header string table index


def test_pages_and_checks_of_bss(example):
    lines, accepted = report(example_path("bss").read_bytes())
    text = "\n".join(lines)
    assert accepted and text.endswith("verdict: accepted")
    assert re.search(r"0x00002000  P RW US  copy .*zero-filled", text)
    assert re.search(r"0x00003000  P RW US  zero  16 pages: fresh zeroed frames", text)  # .bss
    main = symbol(example("bss"), "main") & ~0xFFF
    assert re.search(rf"{main:#010x}  P -- US  file .*module frames, no copy", text)
    assert "  0x00001000  P RW US  zero  stack page below stack_top 0x2000 (fresh zeroed frame)" \
        in lines
    assert "FAIL" not in text


def test_rejected_file_shows_the_failing_check():
    image = bytearray(example_path("hello").read_bytes())
    image[18] = 62  # e_machine = x86-64
    lines, accepted = report(bytes(image))
    assert not accepted
    assert "  FAIL  machine is i386 (3)" in lines
    assert lines[-1] == "verdict: rejected: ELF error: machine 62 is not i386 (3)"


def test_not_an_elf_file():
    lines, accepted = report(b"hello")
    assert not accepted and lines[0] == "Loader checks:"
    assert "  FAIL  magic is 7f 45 4c 46" in lines


def test_cli_readelf(tmp_path):
    bad = tmp_path / "bad.elf"
    bad.write_bytes(b"\x7fELF" + bytes(100))
    assert pynova_cli("readelf", "example:hello").returncode == 0
    result = pynova_cli("readelf", str(bad))
    assert result.returncode == 126 and "verdict: rejected" in result.stdout
