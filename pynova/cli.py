"""The ``pynova`` command: run, build, examples (and the tools' commands)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pynova import __version__

STATUS_USAGE = 2
STATUS_NOT_FOUND = 127


class CliError(Exception):
    """A one-line reason and the exit status it maps to."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def parse_size(text: str) -> int:
    """'128', '128M', '64MiB', '1G' -> bytes (plain numbers are MiB)."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    scale = 1 << 20
    if t and t[-1] in "KMG":
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[t[-1]]
        t = t[:-1]
    try:
        return int(float(t) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a memory size: {text!r}") from None


def positive_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def resolve_program(spec: str) -> Path:
    """A path to an ELF file, or the name of a bundled example (built on demand)."""
    path = Path(spec)
    if path.exists():
        if path.is_dir():
            raise CliError(f"pynova: {spec}: is a directory", STATUS_NOT_FOUND)
        return path
    if "/" in spec or spec.endswith((".elf", ".c")):
        raise CliError(f"pynova: {spec}: no such file", STATUS_NOT_FOUND)
    from pynova import toolchain
    try:
        return toolchain.example_path(spec)
    except toolchain.UnknownExample:
        names = ", ".join(name for name, _ in toolchain.list_examples())
        raise CliError(f"pynova: {spec}: no such file or bundled example (examples: {names})",
                       STATUS_NOT_FOUND) from None
    except toolchain.ToolchainError as err:
        raise CliError(f"pynova: cannot build {spec}: {err}", STATUS_NOT_FOUND) from None


def read_program(spec: str) -> tuple[bytes, str]:
    path = resolve_program(spec)
    try:
        return path.read_bytes(), spec
    except OSError as err:
        raise CliError(f"pynova: {spec}: {err.strerror}", STATUS_NOT_FOUND) from None


# ------------------------------------------------------------------ commands
def cmd_run(args: argparse.Namespace) -> int:
    from pynova.machine import Console
    from pynova.runner import run_image

    image, name = read_program(args.program)
    modules = [(image, name)] + [read_program(extra) for extra in args.module]
    console = Console(sys.stdout)
    result = run_image(image, name, mem_size=args.mem, console=console,
                       max_insns=args.max_insns, timeout=args.timeout,
                       quantum=args.quantum, modules=modules)
    return result.status


def cmd_build(args: argparse.Namespace) -> int:
    from pynova import toolchain
    output = Path(args.output) if args.output else Path(Path(args.sources[0]).stem)
    try:
        toolchain.build_program([Path(s) for s in args.sources], output,
                                extra_cflags=args.cflags or ())
    except toolchain.ToolchainError as err:
        raise CliError(f"pynova build: {err}", STATUS_NOT_FOUND) from None
    print(output)
    return 0


def cmd_examples(args: argparse.Namespace) -> int:
    from pynova import toolchain
    for name, description in toolchain.list_examples():
        print(f"{name:16} {description}")
    return 0


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("program", help="an i386 ELF file, or the name of a bundled example")
    p.add_argument("--mem", type=parse_size, default=128 << 20, metavar="SIZE",
                   help="guest RAM, e.g. 128M (default), 4M, 1G")
    p.add_argument("--max-insns", type=positive_int, metavar="N",
                   help="stop after N user instructions (exit status 124)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="stop after this much wall-clock time (exit status 124)")
    p.add_argument("--quantum", type=positive_int, metavar="N",
                   help="preempt a thread after N instructions (default 10000)",
                   default=10000)
    p.add_argument("--module", action="append", default=[], metavar="PROGRAM",
                   help="load another Multiboot module (the kernel wants exactly one)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pynova", description="A NOVA-style teaching microkernel in Python, running "
        "real i386 ELF programs on an emulated PC.")
    parser.add_argument("--version", action="version", version=f"pynova {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="boot the kernel with PROGRAM as its module and run it")
    add_run_options(run)
    run.set_defaults(func=cmd_run)

    build = sub.add_parser("build", help="build a user program from C/assembly sources")
    build.add_argument("sources", nargs="+", help=".c and .S files")
    build.add_argument("-o", "--output", help="output file (default: first source's stem)")
    build.add_argument("--cflags", action="append", help="extra compiler flag (repeatable)")
    build.set_defaults(func=cmd_build)

    examples = sub.add_parser("examples", help="list the bundled example programs")
    examples.set_defaults(func=cmd_examples)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CliError as err:
        print(err, file=sys.stderr)
        return err.status
    except ValueError as err:
        print(f"pynova: {err}", file=sys.stderr)
        return STATUS_USAGE
    except KeyboardInterrupt:
        print("pynova: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
