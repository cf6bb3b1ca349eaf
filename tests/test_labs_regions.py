"""Skeleton and solution from marked regions: what they hold, and every
marker mistake found at generation time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pynova.labs import registry
from pynova.labs.lab import PACKAGE_DIR
from pynova.labs.regions import COMMENTS, RegionError, generate, labs_marked

from labkit import TOY_SOURCE


def write(tmp_path: Path, text: str, name: str = "src.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_skeleton_replaces_each_solution_block_and_keeps_the_guidance():
    text = generate(TOY_SOURCE, "toy", solution=False)
    assert "    # TODO(step 1): read e_phoff, e_phentsize and e_phnum from the ELF header\n" \
           "    #   and count the program headers whose p_type is PT_LOAD.\n" \
           '    raise NotImplementedError("step 1: read e_phoff, e_phentsize and e_phnum ' \
           'from the ELF header")\n' in text
    # a stage that must be checkable on its own gets the marker's statement
    assert '    # TODO(step 2): return "toy: starting " followed by the program\'s name.\n' \
           '    return ""\n' in text
    assert "struct.unpack_from" not in text and "toy: starting {program}" not in text
    assert "solution begin" not in text and "lab toy" not in text
    assert "not_handed_out" not in text       # outside the region
    compile(text, "skeleton", "exec")


def test_the_solution_is_the_region_without_its_markers():
    text = generate(TOY_SOURCE, "toy", solution=True)
    source = TOY_SOURCE.read_text().splitlines()
    begin = source.index("# lab toy: begin")
    end = source.index("# lab toy: end")
    region = [line for line in source[begin + 1:end]
              if line.strip() not in ("# solution end", "# solution begin",
                                      '# solution begin: return ""')]
    assert text == "\n".join(region) + "\n"
    namespace: dict[str, object] = {}
    exec(compile(text, "solution", "exec"), namespace)
    assert namespace["greeting"]("hello") == "toy: starting hello"  # type: ignore[operator]


def test_an_indented_region_is_dedented_and_keeps_its_inner_indentation(tmp_path):
    src = write(tmp_path, """\
class Kernel:
    # lab k: begin
    def part(self, x):
        if x:
            # TODO(step 1): double it
            # solution begin
            y = x * 2
            return y
            # solution end
        return 0
    # lab k: end
""")
    assert generate(src, "k", solution=False) == """\
def part(self, x):
    if x:
        # TODO(step 1): double it
        raise NotImplementedError("step 1: double it")
    return 0
"""
    assert generate(src, "k", solution=True) == """\
def part(self, x):
    if x:
        # TODO(step 1): double it
        y = x * 2
        return y
    return 0
"""


def test_two_regions_of_one_lab_are_joined_and_other_labs_left_out(tmp_path):
    src = write(tmp_path, """\
# lab a: begin
A = 1
# lab a: end
# lab b: begin
B = 2
# lab b: end
# lab a: begin
C = 3
# lab a: end
""")
    assert generate(src, "a", solution=True) == "A = 1\n\n\nC = 3\n"
    assert generate(src, "b", solution=True) == "B = 2\n"
    assert labs_marked(src) == {"a", "b"}


def test_a_c_source_uses_slashes_and_drops_a_block_without_a_statement(tmp_path):
    src = write(tmp_path, """\
// lab m: begin
void *grow(int n)
{
    // TODO(step 1): ask the kernel for n more bytes
    // solution begin: return 0;
    return nbrk(n);
    // solution end
}
void shrink(void)
{
    // TODO(step 2): give memory back
    // solution begin
    nbrk(0);
    // solution end
}
// lab m: end
""", "alloc.c")
    skeleton = generate(src, "m", solution=False)
    assert "    // TODO(step 1): ask the kernel for n more bytes\n    return 0;\n}" in skeleton
    assert "    // TODO(step 2): give memory back\n}" in skeleton
    assert "nbrk" not in skeleton


@pytest.mark.parametrize("text, line, what", [
    ("# lab a: begin\n# lab b: begin\n# lab b: end\n# lab a: end\n", 2,
     "'lab b: begin' inside the region 'lab a' opened at line 1 (regions do not nest)"),
    ("# lab a: begin\nx = 1\n", 1, "'lab a: begin' has no 'lab a: end'"),
    ("x = 1\n# lab a: end\n", 2, "'lab a: end' without a 'lab a: begin'"),
    ("# lab a: begin\n# lab b: end\n", 2, "'lab b: end' closes the region 'lab a' opened"),
    ("# lab a: begin\ndef f():\n    # TODO: x\n    # solution begin\n"
     "    # solution begin\n    # solution end\n# lab a: end\n", 5,
     "'solution begin' inside the solution block opened at line 4 (blocks do not nest)"),
    ("# lab a: begin\ndef f():\n    # TODO: x\n    # solution begin\n    pass\n"
     "# lab a: end\n", 6, "'lab a: end' inside the solution block opened at line 4"),
    ("# solution begin\n# solution end\n", 1, "'solution begin' outside any 'lab NAME' region"),
    ("# lab a: begin\n# solution end\n# lab a: end\n", 2,
     "'solution end' without a 'solution begin'"),
    ("# lab a: begin\ndef f():\n    # TODO: x\n    # solution begin\n    pass\n"
     "# lab a: end\n# lab a: end\n", 6, "inside the solution block"),
    ("# lab a: begin\ndef f():\n    # solution begin\n    pass\n    # solution end\n"
     "# lab a: end\n", 3, "the solution block has no '# TODO(step N): ...' comment"),
    ("# lab a: begin\ndef f():\n    # TODO: x\n    # solution begin\n    pass\n"
     "  # solution end\n# lab a: end\n", 6, "'solution end' is not indented like its begin"),
    ("    # lab a: begin\nx = 1\n    # lab a: end\n", 2,
     "line is indented less than its marker"),
    ("#lab a: begin\n", 1, "malformed marker '#lab a: begin'"),
    ("# lab a: begin\n# solution  begin\n", 2, "malformed marker '# solution  begin'"),
    ("# Lab A: Begin\n", 1, "malformed marker"),
])
def test_marker_mistakes_are_errors_naming_file_and_line(tmp_path, text, line, what):
    src = write(tmp_path, text)
    with pytest.raises(RegionError) as err:
        generate(src, "a", solution=False)
    message = str(err.value)
    assert message.startswith(f"{src}:{line}: "), message
    assert what in message
    assert "\n" not in message


def test_a_skeleton_that_would_not_compile_is_an_error(tmp_path):
    src = write(tmp_path, "# lab a: begin\ndef f():\n    # TODO: x\n"
                          "    # solution begin: return (\n    return 1\n    # solution end\n"
                          "# lab a: end\n")
    assert generate(src, "a", solution=True) == "def f():\n    # TODO: x\n    return 1\n"
    with pytest.raises(RegionError, match="the generated skeleton of lab a does not compile"):
        generate(src, "a", solution=False)


def test_a_lab_without_a_region_and_an_unknown_suffix_are_errors(tmp_path):
    src = write(tmp_path, "x = 1\n")
    with pytest.raises(RegionError, match="no 'lab a: begin' region"):
        generate(src, "a", solution=True)
    with pytest.raises(RegionError, match="no marker syntax for .txt files"):
        generate(write(tmp_path, "x", "notes.txt"), "a", solution=True)


def test_every_registered_lab_generates_both_versions_of_every_file():
    for lab in registry.registered():
        assert lab.checks, lab.name
        names = [c.name for c in lab.checks]
        assert len(set(names)) == len(names), lab.name
        for wf in lab.files:
            for solution in (False, True):
                text = generate(wf.source_path(), wf.region or lab.name, solution=solution)
                assert text.strip(), (lab.name, wf.name)


def test_every_marked_source_in_pynova_is_well_formed_and_names_a_registered_lab():
    """Markers anywhere in the package: a stray or broken one fails here,
    not in a student's `lab start`."""
    known = {lab.name for lab in registry.registered()}
    syntax_doc = PACKAGE_DIR / "labs" / "regions.py"  # its docstring shows the markers
    for folder, _dirs, files in os.walk(PACKAGE_DIR):
        for name in files:
            path = Path(folder, name)
            if path.suffix in COMMENTS and path != syntax_doc:
                assert labs_marked(path) <= known, path
