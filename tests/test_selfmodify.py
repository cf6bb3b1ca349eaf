"""Self-modifying code under the patched libunicorn (native/unicorn/pynova.patch).

The patch lets a store take Unicorn's fast path as soon as its page holds no
translated code. These programs check that code written and then executed
is always the new code: in the same page, in a page whose TLB entry went
dirty before it held code, through a second mapping of the same frame
(written before and after the frame held code), and inside the running
block itself. Each runs on both libraries.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pynova.kernel.ptab import PRESENT, RW, USER
from pynova.machine import Console
from pynova.runner import run_image
from pynova.toolchain import build_program

from conftest import needs_toolchain, symbol

ALIAS = 0x40000000

SMC_C = r"""
#include "pynova.h"

#define PAGE __attribute__((aligned(4096)))
static unsigned char same[4096] PAGE, dirty[4096] PAGE, framed[4096] PAGE, inblock[4096] PAGE;
/* The test maps ALIAS to the frame of `framed` before the program starts. */
#define ALIAS ((volatile unsigned char *)0x40000000)
typedef int (*fn)(void);

/* mov $value, %eax; ret */
static void emit(volatile unsigned char *at, unsigned char value)
{
    at[0] = 0xb8; at[1] = value; at[2] = 0; at[3] = 0; at[4] = 0; at[5] = 0xc3;
}

static int run(void *code, int times)
{
    int sum = 0;
    for (int i = 0; i < times; i++)
        sum += ((fn)code)();
    return sum;
}

int main(void)
{
    /* The same page: run it hot, rewrite it, run it again. */
    emit(same, 1);
    int a = run(same, 1000);
    emit(same, 2);
    int b = run(same, 1000);
    printf("same page: %d %d\n", a, b);

    /* A page whose TLB entry went dirty (fast stores) before it held code. */
    for (int i = 1024; i < 4096; i++)
        dirty[i] = (unsigned char)i;
    emit(dirty, 3);
    a = run(dirty, 100);
    emit(dirty, 4);
    b = run(dirty, 100);
    printf("dirty entry: %d %d\n", a, b);

    /* A second mapping of the frame: written through it before and after
     * the frame held code, executed through the first. */
    emit(ALIAS, 5);
    a = run(framed, 100);
    emit(ALIAS, 6);
    b = run(framed, 100);
    ALIAS[1] = 7;
    int c = run(framed, 1);
    printf("second mapping: %d %d %d\n", a, b, c);

    /* The running block stores into its own next instruction:
     * movb $9, imm-of-next; mov $1, %eax; ret */
    unsigned int imm = (unsigned int)(inblock + 8);
    unsigned char code[] = {0xc6, 0x05, imm, imm >> 8, imm >> 16, imm >> 24, 9,
                            0xb8, 1, 0, 0, 0, 0xc3};
    for (unsigned int i = 0; i < sizeof code; i++)
        inblock[i] = code[i];
    printf("own block: %d\n", run(inblock, 1));
    exit(0);
}
"""

EXPECTED = ["same page: 1000 2000", "dirty entry: 300 400", "second mapping: 500 600 7",
            "own block: 9"]


@pytest.fixture(scope="module")
def smc_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("smc")
    (tmp / "smc.c").write_text(SMC_C)
    return build_program([tmp / "smc.c"], tmp / "smc")


def alias_mapping(program: Path):  # type: ignore[no-untyped-def]
    """A setup hook: map ALIAS to the frame behind the program's `framed`."""
    framed = symbol(program, "framed")

    def setup(kernel) -> None:  # type: ignore[no-untyped-def]
        found = kernel.pd.ptab.lookup(framed)
        if found is None:  # .bss is mapped at load time; keep the check honest
            raise AssertionError(f"framed ({framed:#x}) is not mapped")
        kernel.pd.ptab.insert_mapping(ALIAS, found[0], PRESENT | RW | USER)
    return setup


@needs_toolchain
def test_code_written_then_executed_is_the_new_code(smc_program: Path,
                                                      unicorn_library: str) -> None:
    r = run_image(smc_program.read_bytes(), "smc", console=Console(),
                  setup=alias_mapping(smc_program))
    assert (r.status, r.reason) == (0, "exit"), r.output
    lines = r.output.splitlines()
    assert [line for line in lines if ":" in line and not line.startswith(("load", " "))] \
        == EXPECTED, r.output
