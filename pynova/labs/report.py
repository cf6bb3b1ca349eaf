"""A lab report as text, as pynova's JSON, as Gradescope's results.json and
as JUnit XML.

Gradescope: https://gradescope-autograders.readthedocs.io/en/latest/specs/
(top-level ``score``, ``execution_time``, ``output``, ``tests``: each with
``name``, ``score``, ``max_score``, ``status``, ``output``, ``visibility``).
JUnit XML: the schema Jenkins and GitLab read: ``testsuites`` > ``testsuite``
(one per submission) > ``testcase`` (one per check) with a ``failure``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pynova.labs.checks import LabReport, number

# Characters XML 1.0 cannot hold even escaped (student output may have them).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def text(report: LabReport) -> str:
    """One line per check (PASS/FAIL, score, name), each failure's message
    indented under it, and the total."""
    width = max((len(_score(c.score, c.max_score)) for c in report.checks), default=3)
    lines = [f"pynova lab {report.lab}: {len(report.checks)} checks"]
    for c in report.checks:
        lines.append(f"{'PASS' if c.passed else 'FAIL'}  "
                     f"{_score(c.score, c.max_score):>{width}}  {c.name}")
        if not c.passed and c.message:
            lines += [f"      {line}" if line else "" for line in c.message.splitlines()]
    passed = sum(c.passed for c in report.checks)
    lines.append(f"score: {_score(report.score, report.max_score)} "
                 f"({passed} of {len(report.checks)} checks passed)")
    return "\n".join(lines)


def _score(score: float, max_score: float) -> str:
    return f"{number(score)}/{number(max_score)}"


def gradescope(report: LabReport, *, seconds: float | None = None,
               error: str | None = None) -> dict[str, Any]:
    """Gradescope's results.json for one submission."""
    summary = f"pynova lab {report.lab}: {_score(report.score, report.max_score)}"
    if error:
        summary += f"\n{error}"
    data: dict[str, Any] = {
        "score": number(report.score),
        "output": summary,
        "tests": [{"name": c.name, "score": number(c.score), "max_score": number(c.max_score),
                   "status": "passed" if c.passed else "failed",
                   "output": c.message, "visibility": "visible"}
                  for c in report.checks],
    }
    total = report.seconds if seconds is None else seconds
    data["execution_time"] = round(total, 3)
    return data


@dataclass(frozen=True)
class Suite:
    """One testsuite of a JUnit file: a submission's report."""

    name: str
    report: LabReport
    error: str | None = None
    seconds: float | None = None


def junit(suites: Sequence[Suite], *, name: str) -> str:
    """A JUnit XML document with one testsuite per submission."""
    root = ET.Element("testsuites", name=clean(name))
    tests = failures = 0
    total = 0.0
    for suite in suites:
        element = _suite(suite)
        root.append(element)
        tests += len(suite.report.checks)
        failures += sum(not c.passed for c in suite.report.checks)
        total += float(element.get("time", "0"))
    root.set("tests", str(tests))
    root.set("failures", str(failures))
    root.set("errors", "0")
    root.set("time", f"{total:.3f}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _suite(suite: Suite) -> ET.Element:
    r = suite.report
    seconds = r.seconds if suite.seconds is None else suite.seconds
    element = ET.Element("testsuite", name=clean(suite.name), tests=str(len(r.checks)),
                         failures=str(sum(not c.passed for c in r.checks)), errors="0",
                         skipped="0", time=f"{seconds:.3f}")
    props = ET.SubElement(element, "properties")
    ET.SubElement(props, "property", name="lab", value=clean(r.lab))
    ET.SubElement(props, "property", name="score", value=str(number(r.score)))
    ET.SubElement(props, "property", name="max_score", value=str(number(r.max_score)))
    if suite.error:
        ET.SubElement(props, "property", name="error", value=clean(suite.error))
    for c in r.checks:
        case = ET.SubElement(element, "testcase", name=clean(c.name),
                             classname=clean(f"{r.lab}.{suite.name}"), time=f"{c.seconds:.3f}")
        if not c.passed:
            first = c.message.splitlines()[0] if c.message else "failed"
            failure = ET.SubElement(case, "failure", message=clean(first),
                                    type=f"score {number(c.score)}/{number(c.max_score)}")
            failure.text = clean(c.message)
    return element


def clean(s: str) -> str:
    """``s`` without the characters XML 1.0 cannot hold (shown as \\xNN)."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", s)
