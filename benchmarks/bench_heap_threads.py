"""Heap and thread benchmarks (issue 3): nbrk growth, thread switches, malloc.

Every figure is the time spent in ``Kernel.run`` (boot excluded, median of
``--runs``) and is also printed as a ratio against the sum-call round trip
measured in the same run, so the figures compare across machines.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pynova.machine import Console, Machine
from pynova.runner import boot
from pynova.toolchain import build_program, example_path, examples_dir

MEM = 128 << 20
QUANTUM = 10_000              # the CLI's default
GROW_PAGES = (64 << 20) // 4096
SUM_CALLS = 100_000
SWITCHES = 100_000
MALLOC_OPS = 20_000


def timed_run(image: bytes, name: str) -> float:
    """Seconds in Kernel.run for one fresh machine; the program must exit 0."""
    with Machine(MEM, Console()) as machine:
        kernel = boot(machine, [(image, name)], quantum=QUANTUM)
        start = time.perf_counter()
        outcome = kernel.run()
        elapsed = time.perf_counter() - start
    if outcome.status != 0 and name != "sysloop":   # sysloop ends in ud2
        raise RuntimeError(f"{name}: exit status {outcome.status} ({outcome.message})")
    return elapsed


def median_run(image: bytes, name: str, runs: int) -> float:
    return statistics.median(timed_run(image, name) for _ in range(runs))


def build_variants(outdir: Path) -> dict[str, bytes]:
    source = examples_dir() / "heap_grow.c"
    variants = {"grow_pages": ["-DKEEP"], "grow_one": ["-DKEEP", "-DONE_CALL"],
                "grow_one_shrink": ["-DONE_CALL"]}
    images = {name: build_program([source], outdir / name, extra_cflags=flags).read_bytes()
              for name, flags in variants.items()}
    for name in ("sysloop", "pingpong", "malloc_stress"):
        images[name] = example_path(name).read_bytes()
    return images


def line(label: str, micros: float, base: float, note: str = "") -> None:
    print(f"  {label:42} {micros:10.2f} us   {micros / base:8.1f}x sum call{note}")


def measure(images: dict[str, bytes], runs: int) -> dict[str, float]:
    return {name: median_run(image, name, runs) for name, image in images.items()}


def main(argv: list[str] | None = None) -> int:
    """Measure and print; ``argv`` None means defaults (benchmarks/run.py
    calls this with its own command line still in sys.argv)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per median")
    args = parser.parse_args([] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="pynova-bench-") as tmp:
        t = measure(build_variants(Path(tmp)), args.runs)
    base = t["sysloop"] / SUM_CALLS * 1e6
    shrink = max(t["grow_one_shrink"] - t["grow_one"], 0.0)
    print(f"heap and threads (quantum {QUANTUM}, median of {args.runs}; "
          f"ratio = cost / sum-call round trip of this run)")
    line("sum call round trip (baseline)", base, base)
    line("nbrk grow 64 MiB, page by page: per call", t["grow_pages"] / GROW_PAGES * 1e6,
         base, f"   ({t['grow_pages']:.3f} s total)")
    line("nbrk grow 64 MiB in one call: per page", t["grow_one"] / GROW_PAGES * 1e6,
         base, f"   ({t['grow_one']:.3f} s total)")
    line("nbrk shrink 64 MiB in one call: per page", shrink / GROW_PAGES * 1e6, base,
         f"   ({shrink:.3f} s total)")
    line("thr_yield switch (100k ping-pong)", t["pingpong"] / SWITCHES * 1e6, base,
         f"   ({t['pingpong']:.3f} s total)")
    line("malloc_stress operation (20k, checked)", t["malloc_stress"] / MALLOC_OPS * 1e6,
         base, f"   ({t['malloc_stress']:.3f} s total)")
    print(f"  page by page / one call: {t['grow_pages'] / t['grow_one']:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
