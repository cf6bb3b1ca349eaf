"""Issue 5 end to end: `pynova run PROGRAM --gdb PORT --gdb-wait` driven by
the real Debian gdb in batch mode."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from pynova.toolchain import example_path

from conftest import address_of_bytes, symbol
from test_gdb_protocol import GDB, gdb_batch

pytestmark = pytest.mark.skipif(GDB is None, reason="gdb is not installed")


def start_cli(*args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "pynova", "run", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    found = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    assert found, line
    return proc, int(found.group(1))


def test_cli_gdb_hello_break_main_next_continue():
    program = example_path("hello")
    proc, port = start_cli("example:hello", "--gdb", "0", "--gdb-wait")
    string = address_of_bytes(program, b"Hello world!\n")
    out = gdb_batch(program, port, ["break main", "continue", "info registers eip",
                                    f"x/s {string:#x}", "next", "continue"])
    stdout, _ = proc.communicate(timeout=60)
    main_bp = re.search(r"Breakpoint 1 at (0x[0-9a-f]+)", out)
    assert main_bp, out
    assert re.search(rf"eip\s+{main_bp.group(1)}\s+{main_bp.group(1)} <main\+\d+>", out), out
    assert symbol(program, "main") <= int(main_bp.group(1), 16)
    assert '"Hello world!\\n"' in out, out
    assert "Program received signal SIGILL" in out, out
    assert "Hello world!" in stdout
    assert proc.returncode == 132


def test_cli_gdb_pagefault_stops_with_sigsegv_at_the_store():
    program = example_path("pagefault")
    proc, port = start_cli("example:pagefault", "--gdb", "0", "--gdb-wait")
    out = gdb_batch(program, port, ["continue", "p $pc", "p $_siginfo._sifields._sigfault.si_addr",
                                    "continue"])
    proc.communicate(timeout=60)
    assert "Program received signal SIGSEGV" in out, out
    assert "(void *) 0x234" in out, out
    assert proc.returncode == 139


def test_cli_gdb_wait_needs_gdb():
    proc = subprocess.run([sys.executable, "-m", "pynova", "run", "example:hello", "--gdb-wait"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--gdb-wait needs --gdb" in proc.stderr


WATCH_C = """#include "pynova.h"
volatile int counter;
int main(void)
{
    for (int i = 0; i < 3; i++)
        counter += 10;
    printf("counter=%d\\n", counter);
    exit(counter);
}
"""


def test_cli_gdb_hardware_watchpoint_stops_after_each_write(tmp_path):
    from pynova.toolchain import build_program

    source = tmp_path / "watch.c"
    source.write_text(WATCH_C)
    program = build_program([source], tmp_path / "watch")
    proc, port = start_cli(str(program), "--gdb", "0", "--gdb-wait")
    out = gdb_batch(program, port, ["break main", "continue", "watch counter", "continue",
                                    "continue", "p counter", "delete", "continue"])
    stdout, _ = proc.communicate(timeout=60)
    assert "Hardware watchpoint 2: counter" in out, out
    assert re.search(r"Old value = 0\s+New value = 10", out), out
    assert re.search(r"Old value = 10\s+New value = 20", out), out
    assert "$1 = 20" in out, out
    assert "counter=30" in stdout
    assert proc.returncode == 30


TWO_THREADS_C = """#include "pynova.h"
volatile int hits;
__attribute__((noinline)) void marker(void) { hits++; }
static void worker(void *arg)
{
    (void)arg;
    hits += 10;
    printf("worker ran\\n");
}
int main(void)
{
    thread_create(worker, 0);
    marker();
    thr_yield();
    printf("main done %d\\n", hits);
    exit(hits);
}
"""


def test_cli_gdb_breakpoint_in_another_thread_after_selecting_one(tmp_path):
    # After `info threads` and `thread 1` the stub had thread 1 selected
    # (Hg1); the breakpoint then hit in thread 2 must read as thread 2's.
    from pynova.toolchain import build_program

    source = tmp_path / "two.c"
    source.write_text(TWO_THREADS_C)
    program = build_program([source], tmp_path / "two", extra_cflags=["-O0", "-g"])
    proc, port = start_cli(str(program), "--gdb", "0", "--gdb-wait")
    out = gdb_batch(program, port, ["break marker", "continue", "info threads", "thread 1",
                                    "break worker", "continue", "p $pc", "info threads",
                                    "delete", "continue"])
    stdout, _ = proc.communicate(timeout=60)
    worker = symbol(program, "worker")
    assert re.search(r"Thread 2 hit Breakpoint 2, (0x[0-9a-f]+ in )?worker", out), out
    pc = re.search(r"\$1 = \(void \(\*\)\(\)\) (0x[0-9a-f]+) <worker\+(\d+)>", out)
    assert pc and 0 <= int(pc.group(1), 16) - worker < 16, out
    assert re.search(r"\* 2 +Thread 2", out), out
    assert "worker ran" in stdout and "main done 11" in stdout
    assert proc.returncode == 11


def test_cli_gdb_with_a_lab_workspace(tmp_path):
    """--gdb works with --lab: the student's root_invoke loaded the program
    gdb breaks in; a wrong iret frame ends the run before the first user
    instruction, and gdb sees the kernel's exit status 134."""
    from labkit import lab_workspace

    program = example_path("hello")
    good = lab_workspace(tmp_path, "elf", "good")
    proc, port = start_cli("example:hello", "--gdb", "0", "--gdb-wait", "--lab", str(good))
    out = gdb_batch(program, port, ["break main", "continue", "continue"])
    stdout, _ = proc.communicate(timeout=60)
    assert re.search(r"Breakpoint 1, .*main", out), out
    assert "Hello world!" in stdout and proc.returncode == 132
    iret = "k.iret([program.entry, SEL_USER_CODE, USER_EFLAGS, k.stack_top, SEL_USER_DATA])"
    bad = lab_workspace(tmp_path, "elf", "bad", ((iret, iret.replace("SEL_USER_CODE", "0")),))
    proc, port = start_cli("example:hello", "--gdb", "0", "--gdb-wait", "--lab", str(bad))
    out = gdb_batch(program, port, ["continue"])
    stdout, _ = proc.communicate(timeout=60)
    assert "exited with code 0206" in out, out
    assert "unhandled kernel exception" in stdout and proc.returncode == 134
