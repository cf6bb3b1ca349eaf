"""The lab "toy": a small but real lab for the framework's tests.

The student writes two functions (toy_source.py's region): step 1 counts
an ELF file's PT_LOAD headers; step 2 makes the line the kernel prints
before it starts a program. The lab's ``kernel_options`` hook has the
kernel print that line from its setup hook, so every run of a user
program (the checks' and the hidden checks') goes through the student's
code, as a real lab's parts do.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pynova.labs.lab import Check, CheckContext, Lab, Student, WorkspaceFile, fail
from pynova.labs.limits import Limits
from pynova.toolchain import example_path

HERE = Path(__file__).resolve().parent
PT_LOAD = 1


def load_headers(image: bytes) -> int:
    """pynova's own count, from the ELF header (the checks' reference)."""
    (phoff,) = struct.unpack_from("<I", image, 28)
    phentsize, phnum = struct.unpack_from("<HH", image, 42)
    return sum(struct.unpack_from("<I", image, phoff + i * phentsize)[0] == PT_LOAD
               for i in range(phnum))


def check_count(ctx: CheckContext) -> None:
    count = ctx.student.module().count_load_segments
    for name in ("hello", "bss"):
        image = example_path(name).read_bytes()
        want, got = load_headers(image), count(image)
        if got != want:
            raise fail(f"{want} PT_LOAD headers in {name}", f"{got!r}",
                       "count the program headers whose p_type is PT_LOAD (1), "
                       "all e_phnum of them")


def check_greeting(ctx: CheckContext) -> None:
    got = ctx.student.module().greeting("hello")
    if got != "toy: starting hello":
        raise fail("'toy: starting hello'", repr(got))


def check_run(ctx: CheckContext) -> None:
    result = ctx.run("hello", max_insns=100_000)
    lines = result.output.splitlines()
    if "toy: starting hello" not in lines:
        raise fail("the kernel to print 'toy: starting hello' before the program runs",
                   f"the output {lines[:4]!r}...", "the kernel prints greeting(program)")
    if "Hello world!" not in lines:
        raise fail("'Hello world!' from the program", f"{result.reason}: {result.message}")


def kernel_options(student: Student) -> Mapping[str, Any]:
    greeting = student.module().greeting

    def setup(kernel: Any) -> None:
        kernel.console.line(greeting(kernel.boot_info.modules[0].cmdline))
    return {"setup": setup}


LAB = Lab(
    name="toy",
    title="a test lab",
    summary="count PT_LOAD headers; greet each program",
    files=(WorkspaceFile("toy_lab.py", HERE / "toy_source.py"),),
    readme="Step 1 counts an ELF file's PT_LOAD headers; step 2 greets the program.",
    checks=(
        Check("step 1: count PT_LOAD headers", 2, check_count),
        Check("step 2: the greeting", 1, check_greeting),
        Check("step 3: hello runs with the greeting", 2, check_run,
              needs=("step 2: the greeting",)),
    ),
    parts=("count_load_segments", "greeting"),
    kernel_options=kernel_options,
    limits=Limits(mem=16 << 20),
)
