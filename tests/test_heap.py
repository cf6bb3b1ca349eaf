"""nbrk (call 3) and the libc malloc on top of it (issue 3)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from pynova.kernel import heap
from pynova.kernel.elf import PT_LOAD, check_header, program_headers
from pynova.kernel.kernel import Kernel
from pynova.kernel.layout import PAGE_SIZE, USER_BREAK_LIMIT, align_up
from pynova.kernel.pd import Pd
from pynova.kernel.ptab import PRESENT, RW, USER
from pynova.machine import Console, Machine
from pynova.runner import boot, run_image
from pynova.toolchain import example_path

from conftest import needs_toolchain

pytestmark = needs_toolchain

MB = 1 << 20
TABLE_SPAN = 4 * MB


def image(name: str) -> bytes:
    return example_path(name).read_bytes()


@contextmanager
def booted(name: str, mem_size: int = 8 * MB) -> Iterator[Kernel]:
    with Machine(mem_size, Console()) as machine:
        yield boot(machine, [(image(name), name)])


@pytest.fixture()
def kernel() -> Iterator[Kernel]:
    with booted("hello") as k:
        yield k


def pd_of(kernel: Kernel) -> Pd:
    assert kernel.pd is not None
    return kernel.pd


def free(kernel: Kernel) -> int:
    assert kernel.kalloc is not None
    return kernel.kalloc.free_count


def snapshot(kernel: Kernel) -> tuple[int, int, list[tuple[int, int]], bytes]:
    pd = pd_of(kernel)
    root = kernel.memory.read(pd.ptab.root, PAGE_SIZE)
    return free(kernel), pd.brk, list(pd.ptab.user_mappings()), root


# ------------------------------------------------------------- the rules
def test_initial_break_is_page_after_highest_segment(kernel: Kernel) -> None:
    data = image("hello")
    eh = check_header(data)
    top = max(ph.vaddr + ph.memsz for ph in program_headers(data, eh) if ph.type == PT_LOAD)
    pd = pd_of(kernel)
    assert pd.initial_break == pd.brk == align_up(top)
    assert heap.nbrk(pd.heap, 0) == pd.initial_break


def test_grow_maps_zeroed_user_rw_pages(kernel: Kernel) -> None:
    pd = pd_of(kernel)
    b0, before = pd.brk, free(kernel)
    new = b0 + 3 * PAGE_SIZE + 5
    assert heap.nbrk(pd.heap, new) == b0
    assert heap.nbrk(pd.heap, 0) == new
    for page in range(b0, b0 + 4 * PAGE_SIZE, PAGE_SIZE):
        mapping = pd.ptab.lookup(page)
        assert mapping is not None and mapping[1] & (PRESENT | RW | USER) == PRESENT | RW | USER
    assert pd.ptab.lookup(b0 + 4 * PAGE_SIZE) is None
    assert pd.read_user(b0, new - b0) == bytes(new - b0)
    assert free(kernel) == before - 4


def test_shrink_unmaps_and_returns_frames(kernel: Kernel) -> None:
    pd = pd_of(kernel)
    b0, before = pd.brk, free(kernel)
    heap.nbrk(pd.heap, b0 + 10 * PAGE_SIZE)
    assert heap.nbrk(pd.heap, b0 + PAGE_SIZE + 1) == b0 + 10 * PAGE_SIZE
    assert pd.ptab.lookup(b0 + PAGE_SIZE) is not None     # holds the new break
    assert pd.ptab.lookup(b0 + 2 * PAGE_SIZE) is None
    assert free(kernel) == before - 2
    heap.nbrk(pd.heap, b0)
    assert free(kernel) == before
    assert pd.brk == b0


def test_grow_and_shrink_across_page_tables_restore_free_count(kernel: Kernel) -> None:
    pd = pd_of(kernel)
    state = snapshot(kernel)
    end = TABLE_SPAN + 2 * PAGE_SIZE                    # needs a second page table
    assert heap.nbrk(pd.heap, end) == pd.initial_break
    assert free(kernel) == state[0] - (end - pd.initial_break) // PAGE_SIZE - 1
    assert heap.nbrk(pd.heap, pd.initial_break) == end
    assert snapshot(kernel) == state


def test_zero_fill_after_shrink_and_grow_inside_one_page(kernel: Kernel) -> None:
    pd = pd_of(kernel)
    b0 = pd.brk
    heap.nbrk(pd.heap, b0 + 2000)
    pd.write_user(b0, b"\xab" * 2000)
    heap.nbrk(pd.heap, b0 + 100)
    heap.nbrk(pd.heap, b0 + PAGE_SIZE + 50)
    assert pd.read_user(b0, 100) == b"\xab" * 100
    assert pd.read_user(b0 + 100, PAGE_SIZE - 50) == bytes(PAGE_SIZE - 50)


@pytest.mark.parametrize("offset", [-PAGE_SIZE, -1])
def test_rejects_below_initial_break(kernel: Kernel, offset: int) -> None:
    pd = pd_of(kernel)
    state = snapshot(kernel)
    assert heap.nbrk(pd.heap, pd.initial_break + offset) == 0
    assert snapshot(kernel) == state


@pytest.mark.parametrize("addr", [USER_BREAK_LIMIT + 1, 0xC0000000, 0xC0100000, 0xFFFFFFFF])
def test_rejects_above_limit_and_kernel_space(kernel: Kernel, addr: int) -> None:
    pd = pd_of(kernel)
    heap.nbrk(pd.heap, pd.brk + PAGE_SIZE)
    state = snapshot(kernel)
    assert heap.nbrk(pd.heap, addr) == 0
    assert snapshot(kernel) == state


def test_rejected_after_shrink_below_initial(kernel: Kernel) -> None:
    pd = pd_of(kernel)
    heap.nbrk(pd.heap, pd.brk + 5 * PAGE_SIZE)
    assert heap.nbrk(pd.heap, pd.initial_break - PAGE_SIZE) == 0
    assert pd.brk == pd.initial_break + 5 * PAGE_SIZE


# ------------------------------------------------------ out of memory
def test_oom_rolls_back_everything() -> None:
    with booted("hello", mem_size=4 * MB) as kernel:
        pd = pd_of(kernel)
        heap.nbrk(pd.heap, pd.brk + 3 * PAGE_SIZE + 7)
        state = snapshot(kernel)
        assert heap.nbrk(pd.heap, USER_BREAK_LIMIT) == 0
        assert snapshot(kernel) == state
        assert heap.nbrk(pd.heap, pd.brk + PAGE_SIZE) != 0   # still usable


def test_oom_while_allocating_a_page_table() -> None:
    """The last data frame goes to a page whose page table cannot be made."""
    with booted("hello", mem_size=8 * MB) as kernel:
        pd, kalloc = pd_of(kernel), kernel.kalloc
        assert kalloc is not None
        heap.nbrk(pd.heap, TABLE_SPAN - PAGE_SIZE)              # up to the last page of table 0
        drained = [kalloc.alloc() for _ in range(kalloc.free_count - 2)]
        state = snapshot(kernel)
        assert heap.nbrk(pd.heap, TABLE_SPAN + PAGE_SIZE) == 0  # page + table + page
        assert snapshot(kernel) == state
        for frame in drained:
            kalloc.free(frame)


# ------------------------------------------------ in the emulated CPU
def test_nbrk_probe_rules_and_fault_after_shrink() -> None:
    result = run_image(image("nbrk_probe"), "nbrk_probe", mem_size=4 * MB)
    lines = result.output.splitlines()
    for rule in ("aligned", "reject", "grow", "shrink", "zero after shrink and grow",
                 "oom rollback", "grow after oom"):
        assert f"{rule} ok" in lines
    assert "FAILED" not in result.output
    assert result.status == 139
    assert result.fault is not None and result.fault.vector == 14
    initial = int(next(x for x in lines if x.startswith("initial break")).split()[-1], 16)
    assert result.fault.cr2 == initial + 2 * PAGE_SIZE
    assert lines.index("touching a page given back") < len(lines) - 1


def test_frames_come_back_after_a_run() -> None:
    with booted("nbrk_probe", mem_size=4 * MB) as kernel:
        before = free(kernel)
        outcome = kernel.run(timeout=60)
        assert outcome.reason == "fault"
        assert free(kernel) == before - 1     # only the page holding the break


# ---------------------------------------------------------------- malloc
def test_malloc_stress() -> None:
    result = run_image(image("malloc_stress"), "malloc_stress", mem_size=8 * MB)
    summary = next(x for x in result.output.splitlines() if x.startswith("malloc_stress:"))
    fields = dict(f.split("=") for f in summary.split()[1:])
    assert int(fields["ops"]) >= 10_000
    assert fields["errors"] == "0"
    assert int(fields["free"]) > 1000 and int(fields["realloc"]) > 1000
    assert int(fields["left"]) < 8192 + 8
    assert "malloc ok" in result.output
    assert result.status == 0


def test_malloc_gives_memory_back() -> None:
    with booted("malloc_stress", mem_size=8 * MB) as kernel:
        before = free(kernel)
        assert kernel.run(timeout=120).status == 0
        pd = pd_of(kernel)
        assert pd.brk - pd.initial_break < 8192 + 16
        assert before - free(kernel) <= 3


@pytest.mark.parametrize("quantum", [97, 1000])
def test_malloc_from_preempted_threads(quantum: int) -> None:
    result = run_image(image("malloc_threads"), "malloc_threads", mem_size=8 * MB,
                       quantum=quantum)
    assert "malloc_threads: threads=3 ops=3000 errors=0" in result.output
    assert result.status == 0
