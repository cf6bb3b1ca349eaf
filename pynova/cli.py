"""The ``pynova`` command: run, build, examples (and the tools' commands)."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pynova import __version__

STATUS_USAGE = 2
STATUS_NOT_FOUND = 127
STATUS_INTERNAL = 70  # EX_SOFTWARE: the emulator failed, not the program


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


def seconds(text: str) -> float:
    """A time limit: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds above 0: {text!r}")
    return value


def port_number(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {text!r}")
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


def read_program(spec: str, mem_size: int | None = None) -> tuple[bytes, str]:
    """The program's bytes; KernelPanic (125) if ``mem_size`` of RAM (or
    the most pynova has) cannot hold it: checked before reading it."""
    from pynova.runner import read_module
    path = resolve_program(spec)
    try:
        return read_module(path, *([] if mem_size is None else [mem_size])), spec
    except OSError as err:
        raise CliError(f"pynova: {spec}: {err.strerror}", STATUS_NOT_FOUND) from None


# ------------------------------------------------------------------ commands
def cmd_run(args: argparse.Namespace) -> int:
    from pynova.interrupt import CtrlC
    from pynova.kernel.kernel import KernelPanic
    from pynova.machine import Console
    from pynova.runner import check_mem, run_image

    check_mem(args.mem)
    try:
        image, name = read_program(args.program, args.mem)
        modules = [(image, name)] + [read_program(extra, args.mem) for extra in args.module]
    except KernelPanic as err:  # too big: what the boot loader would say
        print(err)
        return err.status
    console = Console(sys.stdout, keep=0)  # stream: keep nothing in memory
    hooks = trace_hooks(args.trace) if args.trace else {}
    if args.gdb is not None:
        hooks["setup"] = chain(hooks.get("setup"), gdb_setup(args.gdb, args.gdb_wait))
    elif args.gdb_wait:
        raise CliError("pynova run: --gdb-wait needs --gdb PORT", STATUS_USAGE)
    ctrl_c = CtrlC()  # Ctrl-C stops the CPU too, not only Python (status 130)
    hooks["setup"] = chain(ctrl_c.attach, hooks.get("setup"))
    with ctrl_c:
        result = run_image(image, name, mem_size=args.mem, console=console,
                           max_insns=args.max_insns, timeout=args.timeout,
                           quantum=args.quantum, modules=modules,
                           explain=not args.no_explain, **hooks)
    return result.status


def chain(*hooks):  # type: ignore[no-untyped-def]
    """One setup hook that calls each given hook in turn."""
    present = [h for h in hooks if h is not None]

    def run_all(kernel):  # type: ignore[no-untyped-def]
        for hook in present:
            hook(kernel)
    return run_all


def gdb_setup(port: int, wait: bool):  # type: ignore[no-untyped-def]
    """A setup hook that serves the GDB remote protocol on 127.0.0.1:port."""
    from pynova.tools.gdbstub.debug_run import serve_gdb

    def announce(actual: int) -> None:
        print(f"pynova: gdb stub listening on 127.0.0.1:{actual}"
              f"{' (waiting for gdb before the first instruction)' if wait else ''}",
              file=sys.stderr, flush=True)

    def setup(kernel):  # type: ignore[no-untyped-def]
        try:
            serve_gdb(kernel, port, wait=wait, on_listen=announce)
        except OSError as err:
            raise CliError(f"pynova run: cannot serve gdb on port {port}: "
                           f"{err.strerror or err}", STATUS_USAGE) from None
    return setup


def trace_hooks(spec: str) -> dict:  # type: ignore[type-arg]
    """run_image's setup/on_exit hooks for ``--trace`` (events on stderr)."""
    from pynova.tools.trace import Tracer, parse_events
    events = parse_events(spec)
    tracers = []

    def setup(kernel):  # type: ignore[no-untyped-def]
        tracers.append(Tracer(kernel, events, sys.stderr))
        tracers[0].attach()

    def on_exit(kernel):  # type: ignore[no-untyped-def]
        tracers[0].finish(kernel.outcome)
    return {"setup": setup, "on_exit": on_exit}


def cmd_readelf(args: argparse.Namespace) -> int:
    from pynova.tools.readelf import report
    image, _name = read_program(args.program)
    lines, accepted = report(image)
    print("\n".join(lines))
    return 0 if accepted else 126


def cmd_maps(args: argparse.Namespace) -> int:
    from pynova.kernel.kernel import KernelPanic
    from pynova.tools.maps import format_space, inspect

    try:
        image, name = read_program(args.program, args.mem)
        modules = [(image, name)] + [read_program(extra, args.mem) for extra in args.module]
        space, outcome, _output = inspect(modules, at=args.at, mem_size=args.mem,
                                          max_insns=args.max_insns, timeout=args.timeout,
                                          quantum=args.quantum)
    except KernelPanic as err:
        raise CliError(f"pynova maps: {err}", err.status) from None
    where = "before the first user instruction" if outcome is None else \
        f"after the task ended ({outcome.reason}: {outcome.message})"
    print(f"address space of {name} {where}")
    print("\n".join(format_space(space)))
    if args.svg:
        from pynova.tools.svg import render
        Path(args.svg).write_text(render(space, title=f"{name}: {where}"))
        print(f"picture: {args.svg}")
    if args.at == "fault" and (outcome is None or outcome.reason != "fault"):
        print("pynova maps: the task ended without a fault", file=sys.stderr)
        return 1
    return 0


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


class Formatter(argparse.HelpFormatter):
    """argparse's help formatter, sized without importing shutil: argparse
    makes one for every option it adds, and shutil's import alone costs more
    than the kernel's boot."""

    def __init__(self, prog: str) -> None:
        try:
            width = int(os.environ.get("COLUMNS", "0")) or os.get_terminal_size().columns
        except (OSError, ValueError):
            width = 80
        super().__init__(prog, width=max(width - 2, 40))


def command(sub: argparse._SubParsersAction, name: str, text: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=text, formatter_class=Formatter)


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("program", help="an i386 ELF file, or the name of a bundled example")
    p.add_argument("--mem", type=parse_size, default=128 << 20, metavar="SIZE",
                   help="guest RAM, e.g. 128M (default), 4M, 1G")
    p.add_argument("--max-insns", type=positive_int, metavar="N",
                   help="stop after N user instructions (exit status 124)")
    p.add_argument("--timeout", type=seconds, metavar="SECONDS",
                   help="stop after this much wall-clock time (exit status 124)")
    p.add_argument("--quantum", type=positive_int, metavar="N",
                   help="preempt a thread after N instructions (default 10000)",
                   default=10000)
    p.add_argument("--module", action="append", default=[], metavar="PROGRAM",
                   help="load another Multiboot module (the kernel wants exactly one)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        formatter_class=Formatter,
        prog="pynova", description="A NOVA-style teaching microkernel in Python, running "
        "real i386 ELF programs on an emulated PC.")
    parser.add_argument("--version", action="version", version=f"pynova {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, prog="pynova")

    run = command(sub, "run", "boot the kernel with PROGRAM as its module and run it")
    add_run_options(run)
    run.set_defaults(func=cmd_run)

    build = command(sub, "build", "build a user program from C/assembly sources")
    build.add_argument("sources", nargs="+", help=".c and .S files")
    build.add_argument("-o", "--output", help="output file (default: first source's stem)")
    build.add_argument("--cflags", action="append", help="extra compiler flag (repeatable)")
    build.set_defaults(func=cmd_build)

    run.add_argument("--trace", metavar="EVENTS",
                     help="log events to stderr: syscall,exception,map,sched (or all)")
    run.add_argument("--no-explain", action="store_true",
                     help="do not explain faults after the exception report")
    run.add_argument("--gdb", type=port_number, metavar="PORT",
                     help="serve the GDB remote protocol on 127.0.0.1:PORT (0: any port)")
    run.add_argument("--gdb-wait", action="store_true",
                     help="with --gdb: stop before the first user instruction (like qemu -S)")

    readelf = command(sub, "readelf", "ELF headers, planned pages and loader checks")
    readelf.add_argument("program", help="an i386 ELF file, or the name of a bundled example")
    readelf.set_defaults(func=cmd_readelf)

    maps = command(sub, "maps", "the task's address space from its page tables")
    add_run_options(maps)
    maps.add_argument("--at", choices=("start", "exit", "fault"), default="start",
                      help="before the first user instruction (default), at the end, "
                      "or at a fault")
    maps.add_argument("--svg", metavar="FILE", help="also draw it as an SVG picture")
    maps.set_defaults(func=cmd_maps)

    examples = command(sub, "examples", "list the bundled example programs")
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
    except RuntimeError as err:  # the emulator itself failed (CpuError), or is missing
        print(f"pynova: internal error: {err}", file=sys.stderr)
        return STATUS_INTERNAL
    except KeyboardInterrupt:
        print("pynova: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def script() -> None:
    """The ``pynova`` console script: main(), then a fast exit. Everything
    the run printed is flushed; skipping the interpreter's teardown (module
    and ctypes clean-up, about 15 ms here) is worth more than the kernel's
    whole boot."""
    status = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
