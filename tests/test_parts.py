"""The kernel's lab parts (issue 11): the kernel calls root_invoke,
insert_mapping, nbrk, thr_create and thr_yield only through its Parts, each
with its facade; what root_invoke's iret frame holds is what the CPU pops;
frames come as they are; the system calls do not call back into the kernel."""

from __future__ import annotations

import ast
import enum
from collections import Counter
from pathlib import Path

import pytest

import pynova.kernel.syscall
from pynova.kernel import heap, root_invoke, threads
from pynova.kernel.ec import EcState
from pynova.kernel.elf import ElfError
from pynova.kernel.insert_mapping import insert_mapping
from pynova.kernel.kalloc import JUNK, Kalloc, OutOfMemory
from pynova.kernel.kernel import Kernel, KernelPanic
from pynova.kernel.layout import KERNEL_END, MBI_PHYS, PAGE_SIZE
from pynova.kernel.parts import PYNOVA, PartError, Parts, check_queue, word_result
from pynova.kernel.pd import Heap
from pynova.kernel.ptab import PageDirectory
from pynova.kernel.root_task import RootTask
from pynova.kernel.sched import Threads
from pynova.machine import Console, Machine
from pynova.machine.memory import PhysicalMemory
from pynova.runner import boot, run_image
from pynova.toolchain import example_path

from conftest import needs_toolchain

pytestmark = needs_toolchain


def counting(calls: Counter[str], kinds: dict[str, type]) -> Parts:
    """pynova's own parts, each counting its calls and checking its facade."""
    def wrap(name: str):  # type: ignore[no-untyped-def]
        own = getattr(PYNOVA, name)

        def part(facade, *args):  # type: ignore[no-untyped-def]
            assert isinstance(facade, kinds[name]), (name, facade)
            calls[name] += 1
            return own(facade, *args)
        return part
    return Parts(*(wrap(name) for name in Parts._fields))


FACADES = {"root_invoke": RootTask, "insert_mapping": PageDirectory, "nbrk": Heap,
           "thr_create": Threads, "thr_yield": Threads}


def test_the_kernel_calls_every_part_through_its_parts() -> None:
    calls: Counter[str] = Counter()
    parts = counting(calls, FACADES)
    r = run_image(example_path("threads").read_bytes(), "threads", parts=parts,
                  console=Console(), quantum=None)
    assert r.status == 0 and "main done" in r.output
    assert calls["root_invoke"] == 1
    assert calls["thr_create"] == 2 and calls["thr_yield"] >= 9
    # A part other than pynova's own gets every page one at a time: the
    # loader's pages (data, text) and the stack page.
    hello = run_image(example_path("hello").read_bytes(), "hello", parts=parts,
                      console=Console())
    assert "Hello world!" in hello.output
    calls.clear()
    heap_run = run_image(example_path("nbrk_probe").read_bytes(), "nbrk_probe",
                         parts=parts, console=Console(), mem_size=4 << 20)
    assert "grow ok" in heap_run.output and calls["nbrk"] > 10
    assert calls["insert_mapping"] > 3


def test_a_part_of_its_own_maps_page_by_page() -> None:
    seen: list[int] = []

    def mine(pt: PageDirectory, virt: int, phys: int, attr: int) -> None:
        seen.append(virt)
        insert_mapping(pt, virt, phys, attr)

    with Machine(16 << 20, Console()) as machine:
        kernel = boot(machine, [(example_path("bss").read_bytes(), "bss")],
                      parts=PYNOVA._replace(insert_mapping=mine))
        mapped = [virt for virt, _pte in kernel.pd.ptab.user_mappings()]
    assert sorted(seen) == mapped and len(mapped) > 16  # the 64 KiB .bss, one by one


def test_the_first_ec_is_the_iret_frame_verbatim() -> None:
    def mine(k: RootTask) -> None:
        program = root_invoke.read_program_headers(k)
        root_invoke.map_segments(k, program)
        k.iret([program.entry, 0x1B, 0x246, k.stack_top - 16, 0x23])

    with Machine(16 << 20, Console()) as machine:
        kernel = boot(machine, [(example_path("hello").read_bytes(), "hello")],
                      parts=PYNOVA._replace(root_invoke=mine))
        assert kernel.ecs[0].iret_frame() == [0x3000, 0x1B, 0x246, 0x1FF0, 0x23]
        outcome = kernel.run()
        assert outcome.status == 132 and "Hello world!" in machine.console.output


@pytest.mark.parametrize("frame, error", [
    ([0x3000, 0x1B, 0x200, 0x2000], "expected 5 words"),
    ([0x3000, 0x1B, 0x200, 0x2000, -1], "word 4 is -1, not a 32-bit number"),
    ([0x3000, 0x1B, 0x200, 1 << 32, 0x23], "word 3 is 4294967296"),
    (None, "expected a list of 5 words"),
])
def test_a_frame_that_is_not_five_words_is_refused(frame, error) -> None:
    def mine(k: RootTask) -> None:
        root_invoke.map_segments(k, root_invoke.read_program_headers(k))
        k.iret(frame)

    with Machine(16 << 20, Console()) as machine:
        with pytest.raises(ValueError, match=error):
            boot(machine, [(example_path("hello").read_bytes(), "hello")],
                 parts=PYNOVA._replace(root_invoke=mine))


def test_what_a_root_invoke_raises_gives_every_frame_back() -> None:
    def no_iret(k: RootTask) -> None:
        root_invoke.map_segments(k, root_invoke.read_program_headers(k))

    def elf_error(k: RootTask) -> None:
        root_invoke.map_segments(k, root_invoke.read_program_headers(k))
        raise ElfError("the student's reason")

    def crashes(k: RootTask) -> None:
        root_invoke.map_segments(k, root_invoke.read_program_headers(k))
        raise ZeroDivisionError("oops")

    cases = [(no_iret, KernelPanic, 125, "boot error: root_invoke returned without an iret "
                                         "(k.iret(frame)): nothing to run"),
             (elf_error, KernelPanic, 126, "ELF error: the student's reason"),
             (crashes, ZeroDivisionError, None, "oops")]
    for part, kind, status, text in cases:
        with Machine(16 << 20, Console()) as machine:
            kernel = Kernel(machine, parts=PYNOVA._replace(root_invoke=part))
            kernel.boot(machine.load_multiboot([(example_path("bss").read_bytes(), "bss")],
                                               MBI_PHYS, KERNEL_END))
            assert kernel.kalloc is not None
            free = kernel.kalloc.free_count
            with pytest.raises(kind) as err:
                kernel.root_invoke()
            assert str(err.value) == text
            assert getattr(err.value, "status", None) == status
            assert kernel.kalloc.free_count == free and kernel.pd is None


def test_kalloc_hands_frames_out_as_they_are() -> None:
    memory = PhysicalMemory(1 << 20)
    kalloc = Kalloc(memory, 0x10000, 0x20000)
    frame = kalloc.alloc()
    memory.fill(frame, PAGE_SIZE, 0xAB)
    kalloc.free(frame)
    assert kalloc.alloc() == frame and memory.read(frame, 4) == b"\xab" * 4  # as it was
    kalloc.free(frame)
    assert kalloc.alloc_zeroed() == frame and memory.read(frame, PAGE_SIZE) == bytes(PAGE_SIZE)
    poisoned = Kalloc(memory, 0x20000, 0x30000, poison=True)
    fresh = poisoned.alloc()
    assert memory.read(fresh, PAGE_SIZE) == bytes([JUNK]) * PAGE_SIZE  # junk from the start
    memory.fill(fresh, PAGE_SIZE, 0)
    poisoned.free(fresh)
    assert memory.read(fresh, PAGE_SIZE) == bytes([JUNK]) * PAGE_SIZE  # xv6's kfree
    assert poisoned.alloc_zeroed() == fresh and memory.read(fresh, 8) == bytes(8)
    while poisoned.free_count:
        poisoned.alloc()
    with pytest.raises(OutOfMemory):
        poisoned.alloc_zeroed()
    memory.close()


def test_the_labs_kernels_poison_frames_and_pynovas_own_page_tables_stay_clean() -> None:
    r = run_image(example_path("nbrk_probe").read_bytes(), "nbrk_probe", mem_size=4 << 20,
                  console=Console(), poison_frames=True)
    assert "zero after shrink and grow ok" in r.output and "FAILED" not in r.output


def test_the_default_parts_are_pynovas_own() -> None:
    assert PYNOVA == Parts(root_invoke.root_invoke, insert_mapping, heap.nbrk,
                           threads.thr_create, threads.thr_yield)
    with Machine(4 << 20, Console()) as machine:
        assert Kernel(machine).parts is PYNOVA
    assert PYNOVA.own("insert_mapping") and not PYNOVA._replace(
        insert_mapping=lambda *a: None).own("insert_mapping")


def test_the_system_calls_never_import_the_kernel() -> None:
    """No kernel.py <-> syscall.py circle: a call returns what the kernel
    must do (an Action) instead of calling back into it."""
    source = Path(pynova.kernel.syscall.__file__).read_text()
    imported = {node.module for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(ast.parse(source))
                 if isinstance(node, ast.Import) for alias in node.names}
    assert "pynova.kernel.kernel" not in imported and "pynova.kernel" not in imported
    assert "kernel" not in {a.arg for node in ast.walk(ast.parse(source))
                            if isinstance(node, ast.FunctionDef) for a in node.args.args}


def test_a_root_invoke_that_keeps_a_view_of_the_image_does_not_break_the_machine() -> None:
    kept: list[memoryview] = []

    def mine(k: RootTask) -> None:
        kept.append(k.image[:4])  # outlives root_invoke and the machine
        root_invoke.root_invoke(k)

    r = run_image(example_path("hello").read_bytes(), "hello", console=Console(),
                  parts=PYNOVA._replace(root_invoke=mine))
    assert r.status == 132 and "Hello world!" in r.output
    assert bytes(kept[0]) == b"\x7fELF"
    kept.clear()


def test_a_kernel_half_overwritten_is_a_page_fault_in_ring_0() -> None:
    """A lab's insert_mapping can write anywhere in the directory: when the
    kernel loses its own mapping, its iret faults in ring 0 (status 134)."""
    def broken(pt: PageDirectory, virt: int, phys: int, attr: int) -> None:
        insert_mapping(pt, virt, phys, attr)
        pt.write(pt.root + 768 * 4, 0)   # PDE 768 maps the kernel's first 4 MiB

    r = run_image(example_path("hello").read_bytes(), "hello", console=Console(),
                  explain=True, parts=PYNOVA._replace(insert_mapping=broken))
    assert (r.status, r.reason) == (134, "kernel")
    assert r.fault is not None and (r.fault.vector, r.fault.cr2) == (14, 0xC0103000)
    assert "unhandled kernel exception" in r.output.splitlines()
    assert "why: a page fault in ring 0 at 0xc0103000: the kernel's own mapping of its " \
           "memory is gone" in r.output


# ------------------------------------- what a student's part hands back
@pytest.mark.parametrize("value, got, why", [
    (None, "nbrk returned None", "a path of your function ended without a return"),
    (-1, "nbrk returned -1", "-1 does not fit (a failure is 0)"),
    (1 << 32, "nbrk returned 4294967296", "must lie in 0..0xffffffff"),
    ("0x5000", "nbrk returned '0x5000' (a str)", "a 32-bit register"),
    (True, "nbrk returned True (a bool)", "not True or False: return 0 for a failure"),
])
def test_what_a_students_nbrk_returns_for_eax_is_checked(value, got, why) -> None:
    def mine(heap_: Heap, new_break: int) -> object:
        result = heap.nbrk(heap_, new_break)
        return value if new_break else result

    with pytest.raises(PartError) as err:
        run_image(example_path("nbrk_probe").read_bytes(), "nbrk_probe", console=Console(),
                  mem_size=4 << 20, parts=PYNOVA._replace(nbrk=mine))  # type: ignore[arg-type]
    assert err.value.part == "nbrk"
    assert err.value.message.splitlines()[:2] == [
        "expected: nbrk to return an int 0..2^32-1 (for the caller's eax)", f"got:      {got}"]
    assert why in err.value.why
    assert word_result("nbrk", 0xFFFFFFFF, "0") == 0xFFFFFFFF
    assert type(word_result("nbrk", enum.IntEnum("E", "A").A, "0")) is int


def own_yield_then(change):  # type: ignore[no-untyped-def]
    """A thr_yield that rotates, then changes the queue with ``change``."""
    def mine(t: Threads) -> None:
        threads.thr_yield(t)
        change(t)
    return mine


@pytest.mark.parametrize("change, got", [
    (lambda t: t.ready.append("thread"), "ready[3] = 'thread' (a str)"),
    (lambda t: t.ready.append(t.ready[0]), "thread 2 twice"),
    (lambda t: t.ready.pop(), "thread 0 is no longer in it"),
    (lambda t: t.ready.append(t.new_thread(0x3000, 0x8000)) or t.ready.remove(t.ready[0]),
     "thread 2 is no longer in it, and a new thread 3 (eip=0x3000, esp=0x8000) is"),
])
def test_what_a_students_thread_part_leaves_in_the_queue_is_checked(change, got) -> None:
    parts = PYNOVA._replace(thr_yield=own_yield_then(change))
    with pytest.raises(PartError) as err:
        run_image(example_path("threads").read_bytes(), "threads", console=Console(),
                  parts=parts)
    assert err.value.part == "thr_yield"
    assert err.value.got == got


def test_a_thread_that_ended_may_not_come_back() -> None:
    with Machine(4 << 20, Console()) as machine:
        kernel = boot(machine, [(example_path("hello").read_bytes(), "hello")])
        first = kernel.ecs[0]
        other = kernel.threads.new_thread(0x3000, 0x8000)
        other.state = EcState.DEAD
        with pytest.raises(PartError) as err:
            check_queue("thr_yield", [first, other], [first], kernel.ecs, 1)
        assert err.value.expected == "thr_yield to leave only live threads in the ready queue"
        assert err.value.got == "thread 1, which has ended (thr_exit)"
        check_queue("thr_create", [first], [first], kernel.ecs, 1)  # nothing wrong


def test_new_thread_takes_addresses_only() -> None:
    with Machine(4 << 20, Console()) as machine:
        kernel = boot(machine, [(example_path("hello").read_bytes(), "hello")])
        for eip, esp in (("0x3000", 0x8000), (0x3000, -4), (0x3000, 1 << 32), (True, 0x8000)):
            with pytest.raises(ValueError, match="new_thread: (eip|stack_top) must be an int "
                                                 "0..2\\^32-1"):
                kernel.threads.new_thread(eip, esp)  # type: ignore[arg-type]
        assert len(kernel.ecs) == 1
        with pytest.raises(AttributeError):
            kernel.threads.ready = kernel.threads.ready  # type: ignore[misc]


def test_a_kernel_with_a_students_thr_yield_is_cooperative() -> None:
    def mine(t: Threads) -> None:
        t.ready.rotate(-1)

    with Machine(4 << 20, Console()) as machine:
        assert Kernel(machine, quantum=1000).sched.quantum == 1000
        assert Kernel(machine, quantum=1000,
                      parts=PYNOVA._replace(thr_yield=mine)).sched.quantum is None
        # a student's thr_create alone keeps the quantum: preemption rotates
        # the queue the way pynova's own thr_yield does
        assert Kernel(machine, quantum=1000, parts=PYNOVA._replace(
            thr_create=lambda t, e, s: threads.thr_create(t, e, s))).sched.quantum == 1000
