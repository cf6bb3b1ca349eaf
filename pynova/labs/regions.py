"""Skeleton and solution from the same marked source text.

A lab's region of a source file, and the solution blocks inside it::

    # lab elf: begin
    def step_one(...):
        # TODO(step 1): read the program headers ...
        #   (more guidance)
        # solution begin
        <pynova's code>
        # solution end
    # lab elf: end

The solution keeps the region as it is (markers taken out). The skeleton
replaces each solution block with ``raise NotImplementedError("step 1:
read the program headers ...")`` (the first TODO line right above the
block), or with the statement given on the marker, ``# solution begin:
return []``, where a stage must be checkable on its own. The TODO guidance
stays in both. C sources use ``//`` markers; a C block without a
statement is left out of the skeleton.

Every marker must be well formed and balanced, and every solution block
needs its TODO comment: a mistake is a ``RegionError`` naming the file and
line, found when a workspace is generated (and by the test that generates
every registered lab's files).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: Comment syntax by file suffix.
COMMENTS = {".py": "#", ".c": "//", ".h": "//"}


class RegionError(Exception):
    """The markers of a source file are malformed, unbalanced or nested."""


@dataclass(frozen=True)
class Block:
    """A solution block: the lines between its markers (indices into the
    file's lines, markers excluded)."""

    begin: int
    end: int
    indent: str
    statement: str | None  # from "solution begin: <statement>"
    todo: str              # the first TODO line above it, e.g. "step 1: ..."


@dataclass(frozen=True)
class Region:
    """A ``lab NAME`` region (marker lines excluded) and its blocks."""

    lab: str
    begin: int
    end: int
    indent: str
    blocks: tuple[Block, ...]


class _Syntax:
    """The marker patterns for one comment syntax."""

    def __init__(self, comment: str) -> None:
        c = re.escape(comment)
        self.comment = comment
        self.lab = re.compile(rf"^(\s*){c} lab ([a-z][a-z0-9_-]*): (begin|end)\s*$")
        self.begin = re.compile(rf"^(\s*){c} solution begin(?:: (.*\S))?\s*$")
        self.end = re.compile(rf"^(\s*){c} solution end\s*$")
        # Anything that looks meant as a marker but is not one exactly.
        self.near = re.compile(rf"^\s*{c}\s*(lab\b.*\b(begin|end)\s*$|solution\s*(begin|end)\b)",
                               re.IGNORECASE)
        self.todo = re.compile(rf"^\s*{c} TODO(?:\(([^)]*)\))?: (.*\S)\s*$")


def syntax_for(path: Path) -> _Syntax:
    try:
        return _Syntax(COMMENTS[path.suffix])
    except KeyError:
        raise RegionError(f"{path}: no marker syntax for {path.suffix or 'this'} files "
                          f"(have: {', '.join(sorted(COMMENTS))})") from None


def parse(text: str, path: Path) -> list[Region]:
    """Every region of ``text`` (the contents of ``path``), checked."""
    syn = syntax_for(path)
    lines = text.splitlines()
    regions: list[Region] = []
    region: tuple[str, int, str] | None = None          # lab, marker index, indent
    block: tuple[int, str, str | None] | None = None    # marker index, indent, statement
    blocks: list[Block] = []

    def error(index: int, what: str) -> RegionError:
        return RegionError(f"{path}:{index + 1}: {what}")

    for i, line in enumerate(lines):
        if m := syn.lab.match(line):
            indent, lab, kind = m.groups()
            if block is not None:
                raise error(i, f"'lab {lab}: {kind}' inside the solution block opened at "
                               f"line {block[0] + 1}")
            if kind == "begin":
                if region is not None:
                    raise error(i, f"'lab {lab}: begin' inside the region 'lab {region[0]}' "
                                   f"opened at line {region[1] + 1} (regions do not nest)")
                region, blocks = (lab, i, indent), []
                continue
            if region is None:
                raise error(i, f"'lab {lab}: end' without a 'lab {lab}: begin'")
            if lab != region[0]:
                raise error(i, f"'lab {lab}: end' closes the region 'lab {region[0]}' "
                               f"opened at line {region[1] + 1}")
            if indent != region[2]:
                raise error(i, f"'lab {lab}: end' is not indented like its begin "
                               f"(line {region[1] + 1})")
            regions.append(Region(lab, region[1] + 1, i, indent, tuple(blocks)))
            region = None
        elif m := syn.begin.match(line):
            if region is None:
                raise error(i, "'solution begin' outside any 'lab NAME' region")
            if block is not None:
                raise error(i, f"'solution begin' inside the solution block opened at "
                               f"line {block[0] + 1} (blocks do not nest)")
            block = (i, m.group(1), m.group(2))
        elif m := syn.end.match(line):
            if block is None:
                raise error(i, "'solution end' without a 'solution begin'")
            if m.group(1) != block[1]:
                raise error(i, f"'solution end' is not indented like its begin "
                               f"(line {block[0] + 1})")
            todo = _todo_above(lines, block[0], block[1], syn)
            if todo is None:
                raise error(block[0], f"the solution block has no '{syn.comment} TODO(step N):"
                                      f" ...' comment right above it (the skeleton's guidance)")
            blocks.append(Block(block[0] + 1, i, block[1], block[2], todo))
            _check_indented(lines, block[0] + 1, i, block[1], error)
            block = None
        elif syn.near.match(line):
            raise error(i, f"malformed marker {line.strip()!r}; the markers are "
                           f"'{syn.comment} lab NAME: begin', '{syn.comment} lab NAME: end', "
                           f"'{syn.comment} solution begin[: statement]', "
                           f"'{syn.comment} solution end'")
    if block is not None:
        raise error(block[0], "'solution begin' has no 'solution end'")
    if region is not None:
        raise error(region[1], f"'lab {region[0]}: begin' has no 'lab {region[0]}: end'")
    for r in regions:
        _check_indented(lines, r.begin, r.end, r.indent, error)
    return regions


def _todo_above(lines: list[str], index: int, indent: str, syn: _Syntax) -> str | None:
    """The guidance of the comment block right above line ``index``: its
    first ``TODO(step N): text`` line as "step N: text"."""
    found = None
    i = index - 1
    while i >= 0 and lines[i].startswith(indent) and lines[i].strip().startswith(syn.comment):
        if m := syn.todo.match(lines[i]):
            step, text = m.groups()
            found = f"{step}: {text}" if step else text
        i -= 1
    return found


def _check_indented(lines: list[str], begin: int, end: int, indent: str, error) -> None:  # type: ignore[no-untyped-def]
    for i in range(begin, end):
        if lines[i].strip() and not lines[i].startswith(indent):
            raise error(i, "line is indented less than its marker")


def generate(path: Path, lab: str, *, solution: bool) -> str:
    """The text of ``lab``'s region(s) of ``path``: the solution, or the
    skeleton. Raises RegionError (or OSError for an unreadable file)."""
    text = path.read_text()
    regions = [r for r in parse(text, path) if r.lab == lab]
    if not regions:
        raise RegionError(f"{path}: no 'lab {lab}: begin' region")
    lines = text.splitlines()
    syn = syntax_for(path)
    parts = ["\n".join(_region_lines(lines, r, syn, solution)) + "\n" for r in regions]
    out = "\n\n".join(parts)
    if syn.comment == "#":
        _check_compiles(out, path, lab, solution)
    return out


def _region_lines(lines: list[str], region: Region, syn: _Syntax,
                  solution: bool) -> Iterator[str]:
    cut = len(region.indent)
    i = region.begin
    for block in region.blocks:
        yield from (line[cut:] for line in lines[i:block.begin - 1])
        if solution:
            yield from (line[cut:] for line in lines[block.begin:block.end])
        else:
            replacement = _skeleton_statement(block, syn)
            if replacement is not None:
                yield block.indent[cut:] + replacement
        i = block.end + 1
    yield from (line[cut:] for line in lines[i:region.end])


def _skeleton_statement(block: Block, syn: _Syntax) -> str | None:
    if block.statement is not None:
        return block.statement
    if syn.comment == "#":
        return f"raise NotImplementedError({_python_string(block.todo)})"
    return None


def _python_string(text: str) -> str:
    """A string literal in double quotes, as pynova's sources write them."""
    if '"' in text or "\\" in text or not text.isprintable():
        return repr(text)
    return f'"{text}"'


def _check_compiles(text: str, path: Path, lab: str, solution: bool) -> None:
    try:
        compile(text, f"{path.name} ({lab} {'solution' if solution else 'skeleton'})", "exec")
    except SyntaxError as err:
        raise RegionError(f"{path}: the generated {'solution' if solution else 'skeleton'} "
                          f"of lab {lab} does not compile: {err.msg} (line {err.lineno} of "
                          f"the generated file)") from None


def labs_marked(path: Path) -> set[str]:
    """The lab names whose regions ``path`` holds (checking every marker)."""
    return {r.lab for r in parse(path.read_text(), path)}
