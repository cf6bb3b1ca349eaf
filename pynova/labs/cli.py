"""``pynova lab list | start | check | grade``.

Exit statuses (docs/ABI.md): ``lab check`` 0 when every check passed, 1
when some failed, 2 for bad usage or a directory that is not a workspace;
``lab grade`` 0 when every submission was graded (whatever the scores),
2 for bad usage; ``lab start`` and ``lab list`` 0, or 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pynova.argtypes import memory_size, positive_int, seconds

STATUS_PASSED = 0
STATUS_FAILED = 1
STATUS_USAGE = 2


class LabCliError(Exception):
    """A one-line reason; the command exits with status 2."""


# ------------------------------------------------------------- commands
def cmd_list(args: argparse.Namespace) -> int:
    from pynova.labs import registry
    for lab in registry.registered():
        print(f"{lab.name:10} {lab.title}: {lab.summary}")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    from pynova.labs import workspace
    try:
        lab = workspace.find_lab(args.lab)
        written = workspace.start(lab, Path(args.dir), solution=args.solution)
    except workspace.WorkspaceError as err:
        raise LabCliError(f"pynova lab start: {err}") from None
    what = "pynova's solution" if args.solution else "a workspace"
    print(f"{what} for lab {lab.name} in {args.dir}:")
    for path in written:
        print(f"  {path}")
    print(f"next: edit {', '.join(f.name for f in lab.files)}, then "
          f"`pynova lab check {args.dir}`")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from pynova.labs import report, workspace
    from pynova.labs.checks import CheckLimits, run_checks

    try:
        lab, ws = workspace.open_workspace(Path(args.dir), args.lab)
    except workspace.WorkspaceError as err:
        raise LabCliError(f"pynova lab check: {err}") from None
    checks = all_checks(lab, args.checks, "pynova lab check")
    result = run_checks(lab, ws, checks, CheckLimits(args.timeout, args.mem_limit))
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(report.text(result))
    if args.gradescope:
        write(args.gradescope, json.dumps(report.gradescope(result), indent=2) + "\n",
              "pynova lab check")
    if args.junit:
        write(args.junit, report.junit([report.Suite(ws.path.name, result)],
                                       name=f"pynova lab {lab.name}"), "pynova lab check")
    return STATUS_PASSED if result.passed else STATUS_FAILED


def cmd_grade(args: argparse.Namespace) -> int:
    from pynova.labs import grade, report, workspace

    try:
        lab = workspace.find_lab(args.lab)
    except workspace.WorkspaceError as err:
        raise LabCliError(f"pynova lab grade: {err}") from None
    paths = [Path(p) for p in args.submissions]
    for path in paths:
        if not path.exists():
            raise LabCliError(f"pynova lab grade: {path}: no such file or directory")
    checks = all_checks(lab, args.checks, "pynova lab grade")
    if args.out:
        make_dir(Path(args.out))
    spec = str(lab.origin) if lab.origin is not None else lab.name
    options = grade.GradeOptions(spec, Path(args.checks) if args.checks else None,
                                 args.jobs or 0, args.timeout, args.check_timeout,
                                 args.mem_limit)
    graded = grade.grade(lab, checks, paths, options, grade.Progress(sys.stderr))
    summary = json.dumps(grade.summary(lab, graded), indent=2) + "\n"
    if args.json:
        write(args.json, summary, "pynova lab grade")
    else:
        sys.stdout.write(summary)
    if args.out:
        for g in graded:
            folder = Path(args.out) / g.name
            make_dir(folder)
            data = report.gradescope(g.report, seconds=g.seconds, error=g.error)
            write(str(folder / "results.json"), json.dumps(data, indent=2) + "\n",
                  "pynova lab grade")
    if args.junit:
        suites = [report.Suite(g.name, g.report, g.error, g.seconds) for g in graded]
        write(args.junit, report.junit(suites, name=f"pynova lab {lab.name}"),
              "pynova lab grade")
    return 0


def all_checks(lab: Any, checks_dir: str | None, who: str) -> list[Any]:
    """The lab's checks, then the hidden ones of ``checks_dir`` (built)."""
    checks = list(lab.checks)
    if not checks_dir:
        return checks
    from pynova.labs import hidden
    try:
        extra = hidden.prepare(hidden.load_dir(Path(checks_dir), lab.name), lab)
    except hidden.HiddenCheckError as err:
        raise LabCliError(f"{who}: {err}") from None
    names = {c.name for c in checks}
    for c in extra:
        if c.name in names:
            raise LabCliError(f"{who}: {checks_dir}: hidden check {c.name!r} has the name "
                              f"of one of lab {lab.name}'s own checks")
    return checks + extra


def write(path: str, text: str, who: str) -> None:
    try:
        Path(path).write_text(text)
    except OSError as err:
        raise LabCliError(f"{who}: cannot write {path}: {err.strerror or err}") from None


def make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LabCliError(f"pynova lab grade: cannot make {path}: "
                          f"{err.strerror or err}") from None


# --------------------------------------------------------------- parser
def build_parser(formatter: type[argparse.HelpFormatter] = argparse.HelpFormatter,
                 ) -> argparse.ArgumentParser:
    from pynova.labs.limits import CHECK_MEM_LIMIT, CHECK_TIMEOUT

    parser = argparse.ArgumentParser(
        prog="pynova lab", formatter_class=formatter,
        description="Labs: the course's assignments done in pynova, with staged checks.")
    sub = parser.add_subparsers(dest="lab_command", required=True, prog="pynova lab")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, formatter_class=formatter)

    command("list", "the labs, one line each").set_defaults(func=cmd_list)

    start = command("start", "write a new workspace for LAB into DIR")
    start.add_argument("lab", metavar="LAB", help="a lab's name (see `pynova lab list`)")
    start.add_argument("dir", metavar="DIR", help="the new workspace (an empty directory)")
    start.add_argument("--solution", action="store_true",
                       help="write pynova's own solution instead (for teachers)")
    start.set_defaults(func=cmd_start)

    limits = argparse.ArgumentParser(add_help=False)
    limits.add_argument("--checks", metavar="DIR",
                        help="also run the hidden checks of DIR's *.toml files")
    limits.add_argument("--mem-limit", type=memory_size, default=CHECK_MEM_LIMIT,
                        metavar="SIZE", help="address-space limit of each check's process "
                        f"(default {CHECK_MEM_LIMIT >> 30}G)")

    check = sub.add_parser("check", parents=[limits], formatter_class=formatter,
                           help="run the lab's checks on a workspace",
                           description="run the lab's checks on a workspace")
    check.add_argument("dir", metavar="DIR", nargs="?", default=".",
                       help="the workspace (default: the current directory)")
    check.add_argument("--lab", metavar="LAB",
                       help="the lab (default: the one the workspace was started for)")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.add_argument("--gradescope", metavar="FILE",
                       help="also write Gradescope's results.json to FILE")
    check.add_argument("--junit", metavar="FILE", help="also write JUnit XML to FILE")
    check.add_argument("--timeout", type=seconds, default=CHECK_TIMEOUT,
                       metavar="SECONDS", help="wall-clock limit of each check "
                       f"(default {CHECK_TIMEOUT:g})")
    check.set_defaults(func=cmd_check)

    grade = sub.add_parser("grade", parents=[limits], formatter_class=formatter,
                           help="grade many submissions in parallel (for teachers)",
                           description="grade many submissions in parallel (for teachers)")
    grade.add_argument("lab", metavar="LAB", help="the lab's name, or a lab file (.py)")
    grade.add_argument("submissions", metavar="SUBMISSION", nargs="+",
                       help="a workspace directory or an archive (.zip, .tar, .tar.gz)")
    grade.add_argument("--jobs", type=positive_int, metavar="N",
                       help="submissions graded at once (default: one per CPU)")
    grade.add_argument("--timeout", type=seconds, metavar="SECONDS",
                       help="time limit of one submission (default: the sum of its "
                       "checks' limits plus 30)")
    grade.add_argument("--check-timeout", type=seconds, default=CHECK_TIMEOUT,
                       metavar="SECONDS",
                       help=f"wall-clock limit of each check (default {CHECK_TIMEOUT:g})")
    grade.add_argument("--out", metavar="DIR",
                       help="write Gradescope's DIR/<submission>/results.json")
    grade.add_argument("--json", metavar="FILE",
                       help="write the JSON summary to FILE instead of stdout")
    grade.add_argument("--junit", metavar="FILE",
                       help="write JUnit XML (a testsuite per submission) to FILE")
    grade.set_defaults(func=cmd_grade)
    return parser


def main(argv: Sequence[str],
         formatter: type[argparse.HelpFormatter] = argparse.HelpFormatter) -> int:
    args = build_parser(formatter).parse_args(argv)
    try:
        status: int = args.func(args)
        return status
    except LabCliError as err:
        print(err, file=sys.stderr)
        return STATUS_USAGE
    except KeyboardInterrupt:
        print("pynova lab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
