"""The ``pynova`` command: run, build, examples (and the tools' commands)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pynova import __version__
from pynova.argtypes import memory_size, port_number, positive_int, seconds

STATUS_USAGE = 2
STATUS_NOT_FOUND = 127
STATUS_INTERNAL = 70  # EX_SOFTWARE: the emulator failed, not the program
STATUS_LAB = 71       # the code of a lab workspace (--lab) raised: its traceback on stderr
STATUS_OUTPUT = 74    # EX_IOERR: an output file (or stdout) could not be written
EXAMPLE_PREFIX = "example:"


class CliError(Exception):
    """A one-line reason and the exit status it maps to."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def resolve_program(spec: str) -> tuple[Path, str]:
    """(file, name to show) for PROGRAM: a path to an ELF file, or a bundled
    example asked for as ``example:NAME``. A bare NAME with no such file
    runs the example too, with a note on stderr: a student's program that
    failed to build must not pass for pynova's own silently."""
    if spec.startswith(EXAMPLE_PREFIX):
        return example_program(spec[len(EXAMPLE_PREFIX):], spec), spec[len(EXAMPLE_PREFIX):]
    path = Path(spec)
    if path.exists():
        if path.is_dir():
            raise CliError(f"pynova: {spec}: is a directory", STATUS_NOT_FOUND)
        return path, spec
    if "/" in spec or "." in spec:
        raise CliError(f"pynova: {spec}: no such file", STATUS_NOT_FOUND)
    found = example_program(spec, spec)
    print(f"pynova: note: there is no file {spec!r}; running the bundled example "
          f"{EXAMPLE_PREFIX}{spec}", file=sys.stderr, flush=True)
    return found, spec


def example_program(name: str, spec: str) -> Path:
    from pynova import toolchain
    try:
        return toolchain.example_path(name)
    except toolchain.UnknownExample:
        names = ", ".join(name for name, _ in toolchain.list_examples())
        what = "no such bundled example" if spec.startswith(EXAMPLE_PREFIX) else \
            "no such file or bundled example"
        raise CliError(f"pynova: {spec}: {what} (examples: {names})",
                       STATUS_NOT_FOUND) from None
    except toolchain.ToolchainError as err:
        raise CliError(f"pynova: cannot build {spec}: {err}", STATUS_NOT_FOUND) from None


def read_program(spec: str, mem_size: int | None = None) -> tuple[bytes, str]:
    """The file's bytes and its name for the Multiboot command line: the
    name's bytes as the file system has them, one character each (a boot
    loader passes bytes; the console prints them back unchanged).
    KernelPanic (125) if ``mem_size`` of RAM (or the most pynova has)
    cannot hold it: checked before reading it."""
    from pynova.runner import read_module
    path, name = resolve_program(spec)
    try:
        data = read_module(path, *([] if mem_size is None else [mem_size]))
        return data, os.fsencode(name).decode("latin-1")
    except OSError as err:
        raise CliError(f"pynova: {spec}: {err.strerror}", STATUS_NOT_FOUND) from None


def writable_file(option: str, name: str) -> Path:
    """An output file the user named: not a directory, in one that exists."""
    path = Path(name)
    if path.is_dir():
        raise CliError(f"pynova: {option} {name}: is a directory", STATUS_OUTPUT)
    if not path.parent.is_dir():
        raise CliError(f"pynova: {option} {name}: no such directory: {path.parent}",
                       STATUS_OUTPUT)
    return path


# ------------------------------------------------------------------ --lab
class LabFailed(Exception):
    """The lab workspace's code raised: what to print, with status 71."""


def open_lab(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The workspace of ``--lab DIR`` with its code loaded, or None."""
    if args.lab is None:
        return None
    from pynova.labs.runlab import LabCodeFailed, LabError
    from pynova.labs.runlab import open_lab as open_workspace
    try:
        return open_workspace(args.lab)
    except LabError as err:
        raise CliError(f"pynova {args.command}: --lab {args.lab}: {err}", STATUS_USAGE) from None
    except LabCodeFailed as err:
        raise LabFailed(str(err)) from None


def lab_failure(lab, exc: BaseException) -> LabFailed:  # type: ignore[no-untyped-def]
    """The LabFailed for an exception of a run with a lab's code in place;
    re-raises ``exc`` when it is none of the lab code's doing."""
    if lab is None or isinstance(exc, KeyboardInterrupt):
        raise exc
    text = lab.failure(exc)
    if text is None:
        raise exc
    return LabFailed(text)


# ------------------------------------------------------------------ commands
def cmd_run(args: argparse.Namespace) -> int:
    from pynova.interrupt import CtrlC
    from pynova.kernel.kernel import KernelPanic
    from pynova.program_output import GuardedStdout, ProgramConsole
    from pynova.runner import check_mem, run_image

    check_mem(args.mem)
    lab = open_lab(args)
    try:
        image, name = read_program(args.program, args.mem)
        modules = [(image, name)] + [read_program(extra, args.mem) for extra in args.module]
    except KernelPanic as err:  # too big: what the boot loader would say
        print(err)
        return err.status
    sys.stdout.flush()
    stdout = GuardedStdout(sys.stdout)
    # A stream: the console keeps nothing in memory (keep=0).
    console = ProgramConsole(program_stream=stdout, keep=0) if args.quiet else \
        ProgramConsole(stdout, keep=0)
    hooks = trace_hooks(args.trace) if args.trace else {}
    if args.gdb is not None:
        hooks["setup"] = chain(hooks.get("setup"), gdb_setup(args.gdb, args.gdb_wait))
    elif args.gdb_wait:
        raise CliError("pynova run: --gdb-wait needs --gdb PORT", STATUS_USAGE)
    ctrl_c = CtrlC()  # Ctrl-C stops the CPU too, not only Python (status 130)
    hooks["setup"] = chain(ctrl_c.attach, hooks.get("setup"))
    options = dict(lab.kernel_options) if lab is not None else {}
    try:
        with ctrl_c:
            result = run_image(image, name, mem_size=args.mem, console=console,
                               max_insns=args.max_insns, timeout=args.timeout,
                               quantum=args.quantum, modules=modules,
                               explain=not args.no_explain, **hooks, **options)
    except CliError:
        raise
    except BaseException as exc:  # noqa: B036 - a lab's code may raise anything
        raise lab_failure(lab, exc) from None
    if stdout.problem:
        print(f"pynova: {stdout.problem}", file=sys.stderr)
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
    from pynova.runner import check_mem
    from pynova.tools.maps import format_space, inspect

    check_mem(args.mem)
    svg = writable_file("--svg", args.svg) if args.svg else None
    lab = open_lab(args)
    options = dict(lab.kernel_options) if lab is not None else {}
    try:
        image, name = read_program(args.program, args.mem)
        modules = [(image, name)] + [read_program(extra, args.mem) for extra in args.module]
        space, outcome, _output = inspect(modules, at=args.at, mem_size=args.mem,
                                          max_insns=args.max_insns, timeout=args.timeout,
                                          quantum=args.quantum, **options)
    except KernelPanic as err:
        raise CliError(f"pynova maps: {err}", err.status) from None
    except CliError:
        raise
    except BaseException as exc:  # noqa: B036 - a lab's code may raise anything
        raise lab_failure(lab, exc) from None
    where = "before the first user instruction" if outcome is None else \
        f"after the task ended ({outcome.reason}: {outcome.message})"
    print(f"address space of {name} {where}")
    print("\n".join(format_space(space)))
    if svg is not None:
        from pynova.tools.svg import render
        try:
            svg.write_text(render(space, title=f"{name}: {where}"))
        except OSError as err:
            raise CliError(f"pynova maps: cannot write {args.svg}: {err.strerror or err}",
                           STATUS_OUTPUT) from None
        print(f"picture: {args.svg}")
    if args.at == "fault" and (outcome is None or outcome.reason != "fault"):
        print("pynova maps: the task ended without a fault", file=sys.stderr)
        return 1
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    import shlex

    from pynova import toolchain
    output = Path(args.output) if args.output else Path(Path(args.sources[0]).stem)
    cflags = [flag for text in args.cflags or () for flag in shlex.split(text)]
    if args.debug:
        cflags = [*toolchain.DEBUG_CFLAGS, *cflags]
    try:
        toolchain.build_program([Path(s) for s in args.sources], output, extra_cflags=cflags,
                                warn=lambda text: print(text, file=sys.stderr, flush=True))
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


class VersionAction(argparse.Action):
    """--version: pynova's, and which libunicorn runs the CPU (loaded only
    when asked: it is not free)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        from pynova.machine import uc_abi
        library = uc_abi.load_library()
        print(f"pynova {__version__} (Unicorn {uc_abi.version_string(library)}: "
              f"{library.path})")
        parser.exit()


def command(sub: argparse._SubParsersAction, name: str, text: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=text, formatter_class=Formatter)


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("program", help="an i386 ELF file, or example:NAME for a bundled example")
    p.add_argument("--mem", type=memory_size, default=128 << 20, metavar="SIZE",
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
    p.add_argument("--lab", metavar="DIR",
                   help="boot with the code of the lab workspace DIR in place of pynova's "
                   "(pynova lab start); when it raises: its traceback, exit status 71")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        formatter_class=Formatter,
        prog="pynova", description="A NOVA-style teaching microkernel in Python, running "
        "real i386 ELF programs on an emulated PC.")
    parser.add_argument("--version", action=VersionAction, help="show the version and the "
                        "libunicorn in use, then exit")
    sub = parser.add_subparsers(dest="command", required=True, prog="pynova")

    run = command(sub, "run", "boot the kernel with PROGRAM as its module and run it")
    add_run_options(run)
    run.set_defaults(func=cmd_run)

    build = command(sub, "build", "build a user program from C/assembly sources")
    build.add_argument("sources", nargs="+", help=".c and .S files")
    build.add_argument("-o", "--output", help="output file (default: first source's stem)")
    build.add_argument("--cflags", action="append", metavar="FLAGS",
                       help="extra flags for the C files, e.g. --cflags -O0 or "
                       "--cflags '-O0 -g3' (repeatable)")
    build.add_argument("--debug", action="store_true",
                       help="build for gdb: -O0 -g, so that nothing is inlined and "
                       "breakpoints hit")
    build.set_defaults(func=cmd_build)

    run.add_argument("--trace", metavar="EVENTS",
                     help="log events to stderr: syscall,exception,map,sched (or all)")
    run.add_argument("--no-explain", action="store_true",
                     help="do not explain faults after the exception report")
    run.add_argument("-q", "--quiet", action="store_true",
                     help="print only what the program printed, byte for byte (not the "
                     "kernel's lines); the exit status tells how it ended")
    run.add_argument("--gdb", type=port_number, metavar="PORT",
                     help="serve the GDB remote protocol on 127.0.0.1:PORT (0: any port)")
    run.add_argument("--gdb-wait", action="store_true",
                     help="with --gdb: stop before the first user instruction (like qemu -S)")

    readelf = command(sub, "readelf", "ELF headers, planned pages and loader checks")
    readelf.add_argument("program",
                         help="an i386 ELF file, or example:NAME for a bundled example")
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
    # Listed for --help only: main() hands `pynova lab ...` to pynova/labs/cli.py.
    command(sub, "lab", "labs: list, start, check, grade (pynova lab --help)")
    return parser


def joined_values(argv: Sequence[str], options: Sequence[str] = ("--cflags",)) -> list[str]:
    """``--cflags -O0`` -> ``--cflags=-O0``: argparse takes a value that
    starts with '-' for an option of its own."""
    out: list[str] = []
    pending = None
    for arg in argv:
        if pending is not None:
            out.append(f"{pending}={arg}")
            pending = None
        elif arg in options:
            pending = arg
        else:
            out.append(arg)
    return out + ([pending] if pending is not None else [])


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["lab"]:
        from pynova.labs.cli import main as lab_main
        return lab_main(argv[1:], Formatter)
    parser = build_parser()
    args = parser.parse_args(joined_values(sys.argv[1:] if argv is None else argv))
    try:
        status = args.func(args)
        sys.stdout.flush()
        return status
    except CliError as err:
        print(err, file=sys.stderr)
        return err.status
    except LabFailed as err:
        sys.stdout.flush()
        print(err, file=sys.stderr)
        return STATUS_LAB
    except ValueError as err:
        print(f"pynova: {err}", file=sys.stderr)
        return STATUS_USAGE
    except RuntimeError as err:  # the emulator itself failed (CpuError), or is missing
        print(f"pynova: internal error: {err}", file=sys.stderr)
        return STATUS_INTERNAL
    except KeyboardInterrupt:
        print("pynova: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader has gone (e.g. `| head`): no complaint
        silence_stdout()
        return 0
    except OSError as err:  # stdout on a full disk
        silence_stdout()
        print(f"pynova: cannot write the output: {err.strerror or err}", file=sys.stderr)
        return STATUS_OUTPUT


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that what is still buffered cannot fail
    again when the interpreter flushes it at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def script() -> None:
    """The ``pynova`` console script: main(), then a fast exit. Everything
    the run printed is flushed; skipping the interpreter's teardown (module
    and ctypes clean-up, about 15 ms here) is worth more than the kernel's
    whole boot."""
    status = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        pass
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
