"""pynova benchmarks: `make bench` (or `python benchmarks/run.py`).

Each figure is printed as a ratio against the reference kernel's timings
under qemu (../shared/reference/README.md, measured on this kind of machine);
nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pynova.machine import Console, Machine
from pynova.runner import boot
from pynova.toolchain import example_path

# Medians from ../shared/reference/README.md (qemu 7.2 TCG, 21 runs).
REFERENCE = {
    "hello to the last line (s)": 0.102,
    "hello end to end (s)": 0.102,
    "hello in process, API (s)": 0.102,
    "spin 200M iterations (s)": 0.659,
    "sysloop 100k sum calls (s)": 0.113,
    "sum call round trip (us)": 0.12,
}


def wall(cmd: list[str]) -> tuple[float, float]:
    """(seconds to the last line printed, seconds to exit): the reference
    figures are "from launching qemu to the last serial line"."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    last = start
    assert proc.stdout is not None
    for _line in proc.stdout:
        last = time.perf_counter()
    proc.wait()
    return last - start, time.perf_counter() - start


def median_wall(cmd: list[str], runs: int) -> tuple[float, float]:
    wall(cmd)  # warm the page cache and the build cache
    times = [wall(cmd) for _ in range(runs)]
    return (statistics.median(t[0] for t in times), statistics.median(t[1] for t in times))


def in_process_run(name: str) -> float:
    """Seconds spent in Kernel.run for a bundled example (boot excluded)."""
    with Machine(128 << 20, Console()) as machine:
        kernel = boot(machine, [(example_path(name).read_bytes(), name)])
        start = time.perf_counter()
        kernel.run()
        return time.perf_counter() - start


def api_run(name: str) -> float:
    """Seconds for one pynova.run() of a bundled example: a fresh machine,
    boot, run, explanation, close (what an autograder pays per program)."""
    import pynova

    start = time.perf_counter()
    result = pynova.run(f"example:{name}")
    elapsed = time.perf_counter() - start
    assert result.reason != "not_found", result.message
    return elapsed


def report(name: str, value: float, unit_note: str = "") -> None:
    ref = REFERENCE[name]
    print(f"{name:32} {value:10.4f}   reference {ref:8.4f}   ratio {value / ref:7.2f}x"
          f"{unit_note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=11, help="runs for end-to-end medians")
    parser.add_argument("--quick", action="store_true", help="skip the 200M-iteration spin")
    args = parser.parse_args(argv)
    pynova = [sys.executable, "-m", "pynova", "run"]
    script = Path(sys.executable).with_name("pynova")
    if script.exists():
        pynova = [str(script), "run"]
    print("pynova benchmarks (ratio = pynova / reference kernel under qemu; lower is faster)")
    interpreter = median_wall([sys.executable, "-c", "pass"], args.runs)[1]
    to_last_line, to_exit = median_wall([*pynova, "example:hello"], args.runs)
    report("hello to the last line (s)", to_last_line)
    report("hello end to end (s)", to_exit, f"   (a bare Python start alone: {interpreter:.3f} s)")
    api_run("hello")
    report("hello in process, API (s)", statistics.median(api_run("hello")
                                                          for _ in range(args.runs)))
    sysloop = statistics.median(in_process_run("sysloop") for _ in range(3))
    report("sysloop 100k sum calls (s)", sysloop)
    report("sum call round trip (us)", sysloop / 100_000 * 1e6)
    if not args.quick:
        spin = in_process_run("spin")
        report("spin 200M iterations (s)", spin,
               f"   ({spin / 200e6 * 1e9:.2f} ns per iteration)")
    try:
        from bench_heap_threads import main as heap_threads
    except ImportError:
        return 0
    heap_threads()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
