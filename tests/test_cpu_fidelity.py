"""What ring 3 gets is what the hardware gives (issue 9, items 2, 10, 12-14).

Each probe runs on both libraries: pynova's patched libunicorn does these
things as the CPU does; with the wheel's, the backend makes up for Unicorn
where docs/ABI.md says so.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pynova.machine import Console
from pynova.runner import RunResult, run_image
from pynova.toolchain import build_program

from conftest import needs_toolchain, symbol

# An iret at CPL 3 whose popped EFLAGS ask for virtual-8086 mode with IOPL 3
# (VM, IOPL 3, IF). The hardware ignores VM and IOPL there and returns to
# 0x1b:target in protected mode, where PRIV faults; a CPU that honoured VM
# would fetch from 0x1b0 + target instead, so the same two instructions sit
# there too, to show what it would have let through.
VM86_S = """
    .text
    .globl main, target
main:
    pushl $0x23             /* gs, fs, ds, es, ss: what a return to */
    pushl $0x23             /* virtual-8086 mode would pop as well  */
    pushl $0x23
    pushl $0x23
    pushl $0x23
    pushl %esp
    pushl $0x23202          /* EFLAGS: VM | IOPL 3 | IF */
    pushl $0x1b
    pushl $target
    iret
target:
    PRIV
    ud2
    .skip 0x1b0 - (. - target)
    PRIV
    ud2
"""

SYSENTER_TO_S = """
    .text
    .globl main, resume
main:
    mov $2, %eax
    mov %esp, %ecx
    mov $RESUME, %edx
    sysenter
resume:
    ud2
"""

SYSCALL_S = """
    .text
    .globl main, at_syscall
main:
    mov $2, %eax
at_syscall:
    syscall
    ud2
"""

# A loop of sysenters whose resume address is not the next instruction:
# back to the top, or the sysenter itself.
SYSENTER_LOOP_S = """
    .text
    .globl main
main:
1:  mov $2, %eax
    mov %esp, %ecx
    mov $TARGET, %edx
2:  sysenter
"""

FPU_C = r"""
#include "pynova.h"

static unsigned short get_fcw(void)
{
    unsigned short w;
    __asm__ volatile("fnstcw %0" : "=m"(w));
    return w;
}

static void set_fcw(unsigned short w) { __asm__ volatile("fldcw %0" :: "m"(w)); }

static void load(double v) { __asm__ volatile("fldl %0" :: "m"(v)); }

static int pop(void)
{
    int v;
    __asm__ volatile("fistpl %0" : "=m"(v));
    return v;
}

static volatile int spin;

/* Each thread sets its own x87 control word and leaves a value in st0,
 * then yields and is preempted (spin) several times. */
static void thread(const char *name, unsigned short fcw, double v, int rounds)
{
    printf("%s start fcw=%x\n", name, get_fcw());
    set_fcw(fcw);
    load(v);
    for (int i = 0; i < rounds; i++) {
        thr_yield();
        for (spin = 0; spin < 3000; spin++)
            ;
        printf("%s fcw=%x\n", name, get_fcw());
    }
    printf("%s st0=%d\n", name, pop());
}

static void worker(void *arg) { thread(arg, 0xb7f, 2.5, 3); }

int main(void)
{
    thread_create(worker, "worker");   /* on a stack from malloc */
    thread("main", 0x37e, 7.0, 4);
    exit(0);
}
"""


def build(tmp_path: Path, name: str, text: str, **defines: str) -> Path:
    for key, value in defines.items():
        text = text.replace(key, value)
    source = tmp_path / name
    source.write_text(text)
    return build_program([source], tmp_path / Path(name).stem)


def run(program: Path, **kwargs) -> RunResult:  # type: ignore[no-untyped-def]
    return run_image(program.read_bytes(), program.name, console=Console(), **kwargs)


# ------------------------------------------------------------ item 10
@needs_toolchain
@pytest.mark.parametrize("priv", ["in $0x60, %al", "cli"])
def test_iret_in_ring3_cannot_enter_virtual_8086_mode(tmp_path: Path, priv: str,
                                                       unicorn_library: str) -> None:
    program = build(tmp_path, "vm86.S", VM86_S, PRIV=priv)
    r = run(program)
    assert (r.status, r.reason) == (139, "fault"), r.output
    assert (r.fault.vector, r.fault.error_code) == (13, 0), r.output
    if unicorn_library == "patched":  # the wheel's is caught a little later
        assert r.fault.eip == symbol(program, "target"), r.output


# ------------------------------------------------------------ item 12
@needs_toolchain
@pytest.mark.parametrize("resume, error_code", [(0x50000000, 0x4), (0xC0001000, 0x5)])
def test_sysenter_to_a_bad_edx_is_a_page_fault_on_the_fetch(
        tmp_path: Path, resume: int, error_code: int, unicorn_library: str) -> None:
    """sysexit itself does not check edx; the fetch there at CPL 3 faults:
    not present (0x4) or a supervisor page (0x5), a read by the user."""
    r = run(build(tmp_path, "sysenter.S", SYSENTER_TO_S, RESUME=hex(resume)))
    assert (r.status, r.reason) == (139, "fault"), r.output
    f = r.fault
    assert (f.vector, f.eip, f.cr2, f.error_code) == (14, resume, resume, error_code), r.output


# ------------------------------------------------------------ item 14
@needs_toolchain
def test_syscall_is_an_invalid_opcode(tmp_path: Path, unicorn_library: str) -> None:
    program = build(tmp_path, "syscall.S", SYSCALL_S)
    r = run(program, count_instructions=True)
    assert (r.status, r.reason) == (132, "fault"), r.output
    assert (r.fault.vector, r.fault.eip) == (6, symbol(program, "at_syscall")), r.output
    assert r.instructions == 3  # _start's mov and call, main's mov; not the syscall


# ------------------------------------------------------------- item 2
@needs_toolchain
@pytest.mark.parametrize("target", ["1b", "2f"])
def test_timeout_stops_a_loop_of_sysenters_that_resume_elsewhere(
        tmp_path: Path, target: str, unicorn_library: str) -> None:
    program = build(tmp_path, "loop.S", SYSENTER_LOOP_S, TARGET=target)
    start = time.monotonic()  # the fixture chose the library in the environment
    proc = subprocess.run([sys.executable, "-m", "pynova", "run", "--timeout", "0.5",
                           str(program)], capture_output=True, text=True, timeout=30)
    elapsed = time.monotonic() - start
    assert proc.returncode == 124, proc.stdout + proc.stderr
    assert "limit: time is up (--timeout)" in proc.stdout
    assert elapsed < 10


# ------------------------------------------------------------ item 13
@needs_toolchain
def test_each_thread_keeps_its_own_x87_state_from_fninit(tmp_path: Path,
                                                         unicorn_library: str) -> None:
    r = run(build(tmp_path, "fpu.c", FPU_C), quantum=2000)
    assert (r.status, r.reason) == (0, "exit"), r.output
    lines = [line for line in r.output.splitlines() if line.startswith(("main", "worker"))]
    assert "main start fcw=37f" in lines and "worker start fcw=37f" in lines
    assert [line for line in lines if "fcw" in line and "start" not in line] == \
        [line for line in lines if line in ("main fcw=37e", "worker fcw=b7f")]
    assert lines.count("main fcw=37e") == 4 and lines.count("worker fcw=b7f") == 3
    # st0 survives the switches; 2.5 rounds up under the worker's control word (RC = up)
    assert "main st0=7" in lines and "worker st0=3" in lines


FPU_PINGPONG_C = r"""
#include "pynova.h"
static volatile int done;
static __attribute__((noinline)) int twice(int n)
{
    int out;
    __asm__ volatile(".globl twice_fpu\ntwice_fpu: fildl %1; fildl %1; faddp; fistpl %0"
                     : "=m"(out) : "m"(n));
    return out;
}
static void worker(void *arg)
{
    (void)arg;
    for (int i = 1; i <= 3; i++) { printf("worker %d\n", twice(i)); thr_yield(); }
    done = 1;
}
int main(void)
{
    thread_create(worker, 0);
    for (int i = 10; i <= 30; i += 10) { printf("main %d\n", twice(i)); thr_yield(); }
    while (!done)
        thr_yield();
    exit(0);
}
"""


@needs_toolchain
def test_single_steps_run_one_instruction_each_across_lazy_fpu_switches(
        tmp_path: Path, unicorn_library: str) -> None:
    """Stepped one instruction at a time (a debugger's step, no counting),
    threads that take the x87 state from each other at #NM run exactly as
    many slices as the counted run has instructions, and compute right."""
    from pynova.machine import Machine
    from pynova.runner import boot

    program = build(tmp_path, "fpu_pingpong.c", FPU_PINGPONG_C)
    counted = run(program, count_instructions=True)
    assert counted.status == 0, counted.output
    with Machine(128 << 20, Console()) as machine:
        kernel = boot(machine, [(program.read_bytes(), "fpu_pingpong")])
        steps = 0
        while kernel.outcome is None:
            kernel.run_slice(single_step=True)
            steps += 1
        output = machine.console.output
    assert kernel.outcome.status == 0, output
    assert [line for line in output.splitlines() if line.startswith(("main", "worker"))] == [
        "main 20", "worker 2", "main 40", "worker 4", "main 60", "worker 6"]
    assert steps == counted.instructions


@needs_toolchain
def test_a_breakpoint_on_an_instruction_that_takes_the_fpu_stops_once(
        tmp_path: Path, unicorn_library: str) -> None:
    """The first x87 instruction after a switch raises #NM and runs again:
    a breakpoint on it stops once per time it is reached, not twice."""
    from pynova.machine import Machine
    from pynova.machine.cpu import TrapKind
    from pynova.runner import boot

    program = build(tmp_path, "fpu_pingpong.c", FPU_PINGPONG_C)
    with Machine(128 << 20, Console()) as machine:
        kernel = boot(machine, [(program.read_bytes(), "fpu_pingpong")])
        machine.cpu.add_breakpoint(symbol(program, "twice_fpu"))
        stops = 0
        while kernel.outcome is None:
            trap = kernel.run_slice()
            stops += trap is not None and trap.kind is TrapKind.BREAKPOINT
    assert kernel.outcome.status == 0
    assert stops == 6  # three calls in each thread


@needs_toolchain
def test_threads_keep_their_own_fs_and_gs(tmp_path: Path, unicorn_library: str) -> None:
    source = r"""
#include "pynova.h"
#define SELECTOR(reg) ({ unsigned short s; __asm__ volatile("mov %%" reg ", %0" : "=r"(s)); s; })
static unsigned short fs(void) { return SELECTOR("fs"); }
static unsigned short gs(void) { return SELECTOR("gs"); }
static void worker(void *arg)
{
    __asm__ volatile("mov %0, %%fs" :: "r"(0));
    for (int i = 0; i < 2; i++) { thr_yield(); printf("worker fs=%x gs=%x\n", fs(), gs()); }
}
int main(void)
{
    __asm__ volatile("mov %0, %%gs" :: "r"(0x1b));
    thread_create(worker, 0);
    for (int i = 0; i < 3; i++) { thr_yield(); printf("main fs=%x gs=%x\n", fs(), gs()); }
    exit(0);
}
"""
    r = run(build(tmp_path, "segs.c", source))
    lines = [line for line in r.output.splitlines() if "fs=" in line]
    assert set(lines) == {"worker fs=0 gs=23", "main fs=23 gs=1b"}, r.output
    assert len(lines) == 5
