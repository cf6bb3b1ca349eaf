"""pynova benchmarks: `make bench` (or `python benchmarks/run.py`).

Compute (issue 8): the loop ``for (i = 0; i < N; i++) x += i;`` (x
volatile) as pynova runs it, through ``pynova.run(..., max_insns=...)``,
and split between two threads under the preemption quantum; the sum
system call; hello end to end. Each is measured with pynova's patched
libunicorn and, for contrast, with the wheel's (PYNOVA_UNICORN=wheel), and
the loop figures are set against the same C loop built natively with the
host's gcc -O1 and timed in the same run: the physical limit. The qemu
column is the reference kernel under qemu 7.2 TCG on this kind of machine
(../shared/reference/README.md, issue 8). Nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pynova.machine import Console, Machine
from pynova.machine.uc_abi import LIBRARY_ENV, PATCHED_LIBRARY
from pynova.runner import boot
from pynova.toolchain import build_program, example_path, examples_dir

HERE = Path(__file__).resolve().parent
QUANTUM = 10_000  # the CLI's default
# The same loop as pynova's spin example, timed by the host itself.
NATIVE_LOOP_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
int main(int argc, char **argv)
{
    unsigned int n = (unsigned int)strtoul(argv[1], 0, 0);
    volatile unsigned int x = 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (unsigned int i = 0; i < n; i++)
        x += i;
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.9f\n", (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
    return 0;
}
"""
# qemu 7.2 TCG with the reference kernel on this kind of machine.
QEMU = {"loop": "2.2-2.8 ns", "sum": "0.12-0.16 us", "hello": "0.10 s"}


def median(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def kernel_seconds(image: bytes, name: str, quantum: int | None = QUANTUM) -> float:
    """Seconds in Kernel.run for one fresh machine (boot excluded)."""
    with Machine(128 << 20, Console()) as machine:
        kernel = boot(machine, [(image, name)], quantum=quantum)
        start = time.perf_counter()
        kernel.run()
        return time.perf_counter() - start


def api_seconds(image: bytes, max_insns: int) -> float:
    """Seconds for pynova.run() with an instruction limit (not reached)."""
    import pynova
    start = time.perf_counter()
    result = pynova.run(image, max_insns=max_insns)
    elapsed = time.perf_counter() - start
    if result.status == 124:
        raise RuntimeError("the instruction limit was reached")
    return elapsed


def hello_seconds() -> float:
    script = Path(sys.executable).with_name("pynova")
    cmd = [str(script), "run", "example:hello"] if script.exists() else \
        [sys.executable, "-m", "pynova", "run", "example:hello"]
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def native_ns(binary: Path, n: int, runs: int) -> float:
    def one() -> float:
        out = subprocess.run([str(binary), str(n)], capture_output=True, text=True, check=True)
        return float(out.stdout)
    return median(runs, one) / n * 1e9


class Programs:
    """The guest programs, built once into a temporary directory."""

    def __init__(self, tmp: Path, n: int) -> None:
        spin = examples_dir() / "spin.c"
        self.n = n
        self.spin = build_program([spin], tmp / "spin", extra_cflags=[f"-DITER={n}u"])
        self.spin_small = build_program([spin], tmp / "spin_small",
                                        extra_cflags=[f"-DITER={n // 20}u"])
        self.spin2 = build_program([HERE / "spin2.c"], tmp / "spin2",
                                   extra_cflags=[f"-DITER={n // 2}u"])
        self.spin2_small = build_program([HERE / "spin2.c"], tmp / "spin2_small",
                                         extra_cflags=[f"-DITER={n // 40}u"])
        self.sysloop = example_path("sysloop")
        native_c = tmp / "loop.c"
        native_c.write_text(NATIVE_LOOP_C)
        self.native = tmp / "loop"
        subprocess.run(["gcc", "-O1", "-o", str(self.native), str(native_c)], check=True)


def measure(library: str, p: Programs, runs: int) -> dict[str, float]:
    """The figures with one library: ns per loop iteration, us per sum call,
    seconds for hello end to end."""
    os.environ[LIBRARY_ENV] = PATCHED_LIBRARY if library == "patched" else "wheel"
    # The wheel's library is an order of magnitude slower: a shorter loop.
    spin, spin2, n = (p.spin, p.spin2, p.n) if library == "patched" else \
        (p.spin_small, p.spin2_small, p.n // 20)
    image, image2 = spin.read_bytes(), spin2.read_bytes()
    sysloop = p.sysloop.read_bytes()
    return {
        "loop": median(runs, lambda: kernel_seconds(image, "spin")) / n * 1e9,
        "api": median(runs, lambda: api_seconds(image, 20 * n)) / n * 1e9,
        "threads": median(runs, lambda: kernel_seconds(image2, "spin2")) / n * 1e9,
        "sum": median(runs, lambda: kernel_seconds(sysloop, "sysloop")) / 100_000 * 1e6,
        "hello": median(2 * runs + 1, hello_seconds),
    }


ROWS = [
    ("loop", "loop, ns per iteration (CLI, Kernel.run)", "ns"),
    ("api", "loop via pynova.run(max_insns=...), ns/iter", "ns"),
    ("threads", "loop in 2 threads, quantum 10000, ns/iter", "ns"),
    ("sum", "sum call round trip, us", "us"),
    ("hello", "hello end to end (pynova run), s", "s"),
]


def report(patched: dict[str, float] | None, wheel: dict[str, float], native: float) -> None:
    print(f"native loop (host gcc -O1, this run): {native:.2f} ns per iteration")
    print(f"{'figure':46} {'patched':>9} {'x native':>9} {'wheel':>9} {'x native':>9}"
          f"   qemu")
    for key, label, unit in ROWS:
        cells = []
        for figures in (patched, wheel):
            if figures is None:
                cells += ["-", "-"]
                continue
            value = figures[key]
            cells.append(f"{value:.3f}" if unit != "ns" else f"{value:.2f}")
            cells.append(f"{value / native:.1f}" if unit == "ns" else "")
        print(f"{label:46} {cells[0]:>9} {cells[1]:>9} {cells[2]:>9} {cells[3]:>9}"
              f"   {QEMU.get(key if key != 'api' and key != 'threads' else 'loop', '')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per median")
    parser.add_argument("--iterations", type=int, default=200_000_000,
                        help="loop iterations with the patched library (the wheel's gets 1/20)")
    parser.add_argument("--no-heap-threads", action="store_true",
                        help="skip the heap and thread benchmarks")
    args = parser.parse_args(argv)
    saved = os.environ.get(LIBRARY_ENV)
    with tempfile.TemporaryDirectory(prefix="pynova-bench-") as tmp:
        programs = Programs(Path(tmp), args.iterations)
        native = native_ns(programs.native, args.iterations, args.runs)
        patched = measure("patched", programs, args.runs) \
            if Path(PATCHED_LIBRARY).exists() else None
        wheel = measure("wheel", programs, args.runs)
    if saved is None:
        os.environ.pop(LIBRARY_ENV, None)
    else:
        os.environ[LIBRARY_ENV] = saved
    print("pynova benchmarks (compute: issue 8; median of "
          f"{args.runs}; 'x native' = ns per iteration / the native loop's)")
    if patched is None:
        print("(the patched libunicorn is not built: `make libunicorn`)")
    report(patched, wheel, native)
    if not args.no_heap_threads:
        from bench_heap_threads import main as heap_threads
        print()
        heap_threads([])
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
