"""Lab elf: the seed's assignment, Ec::root_invoke in three steps
(docs/labs/elf.md).

The student's file is the marked region of pynova/kernel/root_invoke.py;
the kernel calls the student's ``root_invoke`` through its Parts. The
checks follow the assignment: step 1 alone (the lines it prints and the
Program it returns, and bad files refused), step 2 alone on pynova's own
step 1 (every page-table entry read back from guest RAM), step 3 alone
after pynova's steps 1 and 2 (the iret the CPU executes), then the
student's whole root_invoke on harder programs, each compared with what
pynova's own kernel does with them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from pynova.kernel import root_invoke as own
from pynova.kernel.elf import EH, PF_W, PF_X, PT_LOAD, ElfError, Ph, check_header, program_headers
from pynova.kernel.kernel import Kernel
from pynova.kernel.layout import (
    PAGE_MASK,
    PAGE_SIZE,
    SEL_USER_CODE,
    SEL_USER_DATA,
    USER_EFLAGS,
    align_down,
    align_up,
)
from pynova.kernel.loader import loadable, plan
from pynova.kernel.parts import PYNOVA, Parts
from pynova.kernel.pd import Pd
from pynova.kernel.ptab import PRESENT, RW, USER, Walk
from pynova.kernel.root_task import BootModule, Program, RootTask
from pynova.labs import kit
from pynova.labs.kit import entry_text, flags, function, program
from pynova.labs.lab import Check, CheckContext, Lab, Student, WorkspaceFile, fail
from pynova.labs.programs import build
from pynova.machine import Console
from pynova.machine.memory import PhysicalMemoryError

STUDENT_FILE = "elf_lab.py"
#: The check programs (bundled examples, or pynova/labs/programs/).
PROGRAMS = ("hello", "bss", "pagefault", "straddle", "shared", "layout2022")
STEP1_PROGRAMS = ("hello", "straddle", "layout2022", "shared")
STEP2_PROGRAMS = ("hello", "straddle")
LINE = re.compile(r"segment virt (0x[0-9a-fA-F]+) phys (0x[0-9a-fA-F]+) size (0x[0-9a-fA-F]+)")
WORDS = ("eip", "cs", "eflags", "esp", "ss")
EFLAGS_RESERVED = 0x2  # bit 1 reads as 1 whatever iret pops (SDM vol. 1, 3.4.3)

STEP1 = "step 1: the ELF header and the segments, aligned as the slide asks"
ELF_ERRORS = "step 1: a file that is not an i386 executable is an ELF error"
STEP2 = "step 2: page-table entries for every page, rights included"
STEP3 = "step 3: iret to ring 3: hello prints Hello world!"
WHOLE = "root_invoke: hello runs with your three steps"
BSS = "harder: a big .bss reads as zero"
SHARED = "harder: a page that two segments share"
FAULT = "harder: a fault at the right eip and cr2 (pagefault)"
LAYOUT = "harder: the 2022 layout, stack_top at 0xc0000000"


# ------------------------------------------------------------- step 1
def check_step1(ctx: CheckContext) -> None:
    step1 = function(ctx.student, "read_program_headers")
    for name in STEP1_PROGRAMS:
        data = program(name)
        with kit.booted(data, name) as kernel, kit.root_task(kernel) as (_pd, task):
            mark = len(kernel.console.output)
            got = step1(task)
            printed = kernel.console.output[mark:].splitlines()
            reference = Console()
            with kit.root_task(kernel, reference) as (_pd2, mine):
                want = own.read_program_headers(mine)
            compare_lines(name, task.module, data, want, reference.output.splitlines(), printed)
            compare_program(name, want, got)


def compare_lines(name: str, module: BootModule, data: bytes, want: Program,
                  want_lines: list[str], printed: list[str]) -> None:
    lines = [line for line in printed if line.lstrip().startswith("segment")]
    if len(lines) != len(want_lines):
        others = [ph for ph in program_headers(data, check_header(data)) if ph.type != PT_LOAD]
        why = (f"{name} has {len(want.segments)} PT_LOAD segments: print one line for each, "
               f"k.print(segment_line(virt, phys, size, ph.flags))")
        if len(lines) > len(want_lines) and others:
            why += (f"; its other program headers (types "
                    f"{', '.join(f'{ph.type:#x}' for ph in others)}) load nothing")
        raise fail(f"these lines for {name}:\n" + "\n".join(want_lines),
                   "\n".join(lines) if lines else f"{len(printed)} other lines: {printed[:4]!r}",
                   why)
    for ph, want_line, line in zip(want.segments, want_lines, lines, strict=True):
        if line.rstrip() != want_line:
            raise fail(f"{want_line.strip()}   ({name}: vaddr {ph.vaddr:#x}, offset "
                       f"{ph.offset:#x}, memsz {ph.memsz:#x})", line.strip(),
                       line_why(ph, module, line))


def line_why(ph: Ph, module: BootModule, line: str) -> str:
    """Why a segment line is wrong, from the numbers it shows."""
    m = LINE.search(line)
    if m is None:
        return "print each segment with k.print(segment_line(virt, phys, size, ph.flags))"
    virt, phys, size = (int(x, 16) for x in m.groups())
    v, off = align_down(ph.vaddr), align_down(ph.offset)
    end = ph.vaddr + ph.memsz
    span = align_up(end) - v
    if virt != v:
        return (f"virt is the segment's vaddr aligned down to its page: "
                f"align_down({ph.vaddr:#x}) = {v:#x}")
    if phys != module.start + off:
        if phys == module.start + ph.offset:
            return (f"phys must be aligned down to its page too: k.module.start + "
                    f"align_down(offset) = {module.start + off:#x}")
        return (f"phys is where the segment's bytes lie in physical memory: the boot loader "
                f"put the file at k.module.start = {module.start:#x}, so phys = "
                f"k.module.start + align_down(offset) = {module.start + off:#x}")
    if size != span:
        if size == align_up(ph.memsz):
            return (f"align_up(memsz) = {size:#x} is a page short: the segment starts at "
                    f"{ph.vaddr:#x}, inside its page, so its bytes reach {end:#x}; the size "
                    f"must cover every page they touch: align_up(vaddr + memsz) - "
                    f"align_down(vaddr) = {span:#x}")
        if size in (ph.memsz, ph.filesz, align_up(ph.filesz)):
            return (f"the size is the memory the segment needs (memsz, .bss included) in "
                    f"whole pages: align_up(vaddr + memsz) - align_down(vaddr) = {span:#x}")
        return f"size = align_up(vaddr + memsz) - align_down(vaddr) = {span:#x}"
    return "the rights come from the segment's flags: pass ph.flags to segment_line"


def compare_program(name: str, want: Program, got: object) -> None:
    entry: object
    listed: Any
    try:
        entry, listed = got  # type: ignore[misc]
        segments = tuple(listed)
    except (TypeError, ValueError):
        raise fail("read_program_headers to return Program(eh.entry, segments)",
                   kit.short(got)) from None
    if entry != want.entry:
        raise fail(f"the entry point {want.entry:#x} of {name} in Program.entry",
                   kit.short(entry), "the entry point is the ELF header's e_entry: the user eip "
                   "that step 3 puts into the iret frame")
    if segments != want.segments:
        types = [getattr(ph, "type", "?") for ph in segments]
        raise fail(f"the {len(want.segments)} PT_LOAD program headers of {name} in "
                   f"Program.segments, in file order", f"{len(segments)} entries, types {types}",
                   "step 2 maps exactly these: the headers of type PT_LOAD (1), each as "
                   "Ph.unpack read it")


BAD_FILES: tuple[tuple[str, Callable[[bytearray], None], str], ...] = (
    ("the magic 7f 'X' 'L' 'F'", lambda im: im.__setitem__(1, ord("X")),
     "a file whose first four bytes are not 7f 'E' 'L' 'F' is no ELF file at all"),
    ("data == 2 (big-endian)", lambda im: im.__setitem__(5, 2),
     "data == 2 says every number in the file is big-endian: read as the i386's "
     "little-endian words they are nonsense"),
    ("type == 3 (a shared object, ET_DYN)", lambda im: EH.pack_into(
        im, 0, *EH.unpack_from(im)[:1], 3, *EH.unpack_from(im)[2:]),
     "only type 2 (ET_EXEC) is an executable at fixed addresses; a shared object "
     "needs a dynamic loader"),
)


def check_elf_errors(ctx: CheckContext) -> None:
    step1 = function(ctx.student, "read_program_headers")
    base = program("hello")
    for what, mutate, why in BAD_FILES:
        data = bytearray(base)
        mutate(data)
        with kit.booted(bytes(data), "bad") as kernel, kit.root_task(kernel) as (_pd, task):
            try:
                got = step1(task)
            except ElfError:
                continue
            except NotImplementedError:
                raise
            except Exception as exc:  # noqa: BLE001 - the student's code raised something else
                raise fail(f"ElfError for a file with {what}", f"{type(exc).__name__}: {exc}",
                           "raise ElfError(\"why\"): the kernel then prints 'ELF error: why' "
                           "and stops with status 126 (the seed's panic)") from None
            raise fail(f"ElfError for a file with {what}",
                       f"read_program_headers accepted it and returned {kit.short(got)}", why)


# ------------------------------------------------------------- step 2
def check_step2(ctx: CheckContext) -> None:
    step2 = function(ctx.student, "map_segments")
    for name in STEP2_PROGRAMS:
        data = program(name)
        with kit.booted(data, name) as kernel, kit.root_task(kernel) as (pd, task):
            step2(task, own.read_program_headers(task))
            problem = page_problem(kernel, pd, task.module, data, name)
        if problem is not None:
            raise fail(*problem)


class Problem(NamedTuple):
    """A page mapped wrong: what was expected, what is there, and why."""

    expected: str
    got: str
    why: str


def page_problem(kernel: Kernel, pd: Pd, module: BootModule, data: bytes,
                 name: str) -> Problem | None:
    """The first page whose mapping differs from pynova's plan (present,
    rights as the CPU sees them, the bytes it shows), or a page mapped
    that no segment covers."""
    segments = [ph for _, ph in loadable(program_headers(data, check_header(data)))]
    expected: set[int] = set()
    for run in plan(data, kernel.memory.size).runs:
        for n in range(run.pages):
            virt = run.virt + n * PAGE_SIZE
            expected.add(virt)
            origin = None if run.file_page is None else run.file_page + n * PAGE_SIZE
            content = bytearray(PAGE_SIZE)
            if origin is not None:
                content[:] = kernel.memory.read(module.start + origin, PAGE_SIZE)
                for lo, hi in run.zero:
                    content[lo:hi] = bytes(hi - lo)
            problem = _page(kernel, pd, module, name, virt, run.attr, origin, bytes(content),
                            [ph for ph in segments if _covers(ph, virt)])
            if problem is not None:
                return problem
    for virt, pte in pd.ptab.user_mappings():
        if virt not in expected:
            return Problem(f"only the pages of {name}'s segments",
                        f"page {virt:#x} is mapped too, PTE {entry_text(pte)}",
                        "no PT_LOAD segment covers it (the kernel maps the stack page "
                        "itself, once root_invoke has returned)")
    return None


def _covers(ph: Ph, virt: int) -> bool:
    return align_down(ph.vaddr) <= virt < align_up(ph.vaddr + ph.memsz)


def _seg_text(segs: Sequence[Ph]) -> str:
    return " and ".join(f"segment {ph.vaddr:#x}+{ph.memsz:#x} {_rights(ph.flags)}"
                        for ph in segs)


def _rights(f: int) -> str:
    return "r" + ("w" if f & PF_W else "-") + ("x" if f & PF_X else "-")


def _page(kernel: Kernel, pd: Pd, module: BootModule, name: str, virt: int, attr: int,
          origin: int | None, content: bytes, segs: list[Ph]) -> Problem | None:
    walk = pd.ptab.walk(virt)
    where = f"page {virt:#x} of {name} ({_seg_text(segs)})"
    fetch = any(ph.flags & PF_X for ph in segs)
    if not walk.present:
        got = f"not mapped: PDE {entry_text(walk.pde)}"
        if walk.pde & PRESENT:
            got += f", PTE {entry_text(walk.pte)}"
        return Problem(f"{where} with {flags(attr)}", got, _missing_why(virt, segs, walk))
    have = walk.attr
    if have != attr:
        got = (f"PDE {entry_text(walk.pde)}, PTE {entry_text(walk.pte)}: the CPU allows "
               f"{flags(have)}")
        return Problem(f"{where} with {flags(attr)}", got,
                       _rights_why(virt, attr, have, segs, walk, fetch))
    frame = walk.pte & PAGE_MASK
    try:
        shown = kernel.memory.read(frame, PAGE_SIZE)
    except PhysicalMemoryError:
        return Problem(f"{where} on a frame of RAM", f"PTE {entry_text(walk.pte)}: frame "
                       f"{frame:#x} lies outside the {kernel.memory.size >> 20} MiB of RAM",
                       "phys = k.module.start + align_down(offset) + (virt - align_down(vaddr))")
    if shown != content:
        return Problem(f"{where} showing {_what(origin)}", _shown(shown, frame, module),
                       _content_why(virt, origin, module))
    return None


def _missing_why(virt: int, segs: list[Ph], walk: Walk) -> str:
    hardware = kit.would_fault(walk, virt) or ""
    for ph in segs:
        first = align_down(ph.vaddr)
        if first + align_up(ph.memsz) <= virt:
            return (f"the segment's bytes {ph.vaddr:#x}..{ph.vaddr + ph.memsz:#x} reach into "
                    f"page {virt:#x}: counting align_up(memsz) pages from align_down(vaddr) "
                    f"loses the last page of a segment that starts inside a page; map up to "
                    f"align_up(vaddr + memsz); {hardware}")
        if first + align_up(ph.filesz) <= virt:
            return (f"memsz counts, not filesz: the pages past the file's bytes (.bss) need "
                    f"mapping too; {hardware}")
    return (f"every page from align_down(vaddr) up to align_up(vaddr + memsz) of every PT_LOAD "
            f"segment needs a mapping; {hardware}")


def _rights_why(virt: int, want: int, have: int, segs: list[Ph], walk: Walk,
                fetch: bool) -> str:
    if want & USER and not have & USER:
        return kit.would_fault(walk, virt, fetch=fetch) or "the mapping lacks USER"
    if have & RW and not want & RW:
        return (f"the segment's flags ({_rights(segs[0].flags)}) have no PF_W, so its pages "
                f"must be read-only (no RW): with RW the CPU lets a stray store change the "
                f"program's code or constants instead of faulting")
    if want & RW and not have & RW:
        hardware = kit.would_fault(walk, virt, write=True) or ""
        if len(segs) > 1:
            return (f"the page holds bytes of two segments, so it needs the rights of both: "
                    f"RW from the writable one; {hardware}")
        return f"the segment's flags have PF_W: map its pages with RW; {hardware}"
    return "attr is PRESENT | USER, plus RW when the segment's flags have PF_W"


def _what(origin: int | None) -> str:
    return "zeros (.bss)" if origin is None else f"the file's bytes at offset {origin:#x}"


def _shown(shown: bytes, frame: int, module: BootModule) -> str:
    if module.start <= frame < align_up(module.end):
        return f"frame {frame:#x}: the file's bytes at offset {frame - module.start:#x}"
    nonzero = next((i for i, b in enumerate(shown) if b), None)
    if nonzero is None:
        return f"frame {frame:#x}, which reads as zero"
    return f"frame {frame:#x}, whose byte {nonzero:#x} is {shown[nonzero]:#04x}"


def _content_why(virt: int, origin: int | None, module: BootModule) -> str:
    if origin is None:
        return (f"page {virt:#x} holds none of the file's bytes (.bss, past vaddr + filesz): "
                f"it needs a fresh frame that reads as zero, k.alloc_frame(); the frames "
                f"after the file's end hold other data")
    return (f"phys for page {virt:#x} is the module's frame with those bytes: "
            f"k.module.start + align_down(offset) + (virt - align_down(vaddr)) = "
            f"{module.start + origin:#x}")


# ------------------------------------------------------------- step 3
def check_step3(ctx: CheckContext) -> None:
    step3 = function(ctx.student, "enter_user_mode")

    def root_invoke(k: RootTask) -> None:
        program_ = own.read_program_headers(k)
        own.map_segments(k, program_)
        step3(k, program_)

    verify(ctx.student, "hello", PYNOVA._replace(root_invoke=root_invoke), pages=False)


def frame_why(got: Sequence[int] | None, want: Sequence[int], run: kit.Run) -> str | None:
    """Why the iret frame is wrong, word by word (None when it is right)."""
    if got is None:
        return "root_invoke made no iret frame"
    if _same_frame(got, want):
        return None
    cpu = ""
    f = run.fault
    if f is not None and run.result.reason == "kernel":
        cpu = (f"; the CPU refused the frame in the iret itself, still in ring 0: {f.name} "
               f"with error code {f.error_code:#x}"
               + (" (the selector it refused)" if f.error_code else ""))
    if sorted(got) == sorted(want):
        return (f"the five words are the right ones in the wrong order: iret pops eip, cs, "
                f"eflags, esp, ss, the first from where esp points{cpu}")
    reasons = {
        0: f"word 0 is the new eip: the entry point {want[0]:#x} (the header's e_entry)",
        1: f"word 1 is the new cs: SEL_USER_CODE {SEL_USER_CODE:#x}, the GDT's ring-3 code "
           f"segment",
        2: f"word 2 is eflags: {USER_EFLAGS:#x}, just IF",
        3: f"word 3 is the new esp: k.stack_top, {want[3]:#x} for this program (its "
           f"stack_top symbol); the kernel maps the stack page below it",
        4: f"word 4 is the new ss: SEL_USER_DATA {SEL_USER_DATA:#x}, the GDT's ring-3 data "
           f"segment",
    }
    wrong = [i for i in range(5) if not _same_word(i, got[i], want[i])]
    return "; ".join(reasons[i] for i in wrong) + cpu


def _same_word(i: int, got: int, want: int) -> bool:
    return got | EFLAGS_RESERVED == want | EFLAGS_RESERVED if i == 2 else got == want


def _same_frame(got: Sequence[int], want: Sequence[int]) -> bool:
    return len(got) == 5 and all(_same_word(i, got[i], want[i]) for i in range(5))


def _frame_text(frame: Sequence[int] | None) -> str:
    if frame is None:
        return "no frame"
    return "[" + ", ".join(f"{n}={w:#x}" for n, w in zip(WORDS, frame, strict=True)) + "]"


# ------------------------------------------------------------ whole runs
def verify(student: Student, name: str, parts: Parts, *, pages: bool = True,
           hint: str = "") -> None:
    """Run ``name`` with ``parts`` and with pynova's own; they must end
    alike, the program print the same and the iret frame be the seed's.
    ``pages``: diagnose a difference with the student's steps 1 and 2."""
    data, want, got = kit.both_runs(name, parts)
    assert want.frame is not None
    frame = frame_why(got.frame, want.frame, got)
    if kit.ran_alike(got, want) and frame is None:
        return
    expected, happened = kit.run_text(want, name), kit.run_text(got, name)
    if frame is not None:
        raise fail(f"the iret frame {_frame_text(want.frame)}; {expected}",
                   f"{_frame_text(got.frame)}; {happened}", frame)
    why = [kit.fault_story(got.fault, got.walk)] \
        if got.fault is not None and got.fault != want.fault else []
    found = _student_pages(student, name, data) if pages else None
    if found is not None:
        why.append(found)
    elif hint:
        why.append(hint)
    raise fail(expected, happened, "; ".join(why) or "the program printed something else")


def _student_pages(student: Student, name: str, data: bytes) -> str | None:
    """The first wrong page after the student's steps 1 and 2, in words."""
    try:
        step1 = function(student, "read_program_headers")
        step2 = function(student, "map_segments")
        with kit.booted(data, name) as kernel, kit.root_task(kernel, Console()) as (pd, task):
            step2(task, step1(task))
            problem = page_problem(kernel, pd, task.module, data, name)
    except Exception:  # noqa: BLE001 - a diagnosis only: the run said what failed
        return None
    if problem is None:
        return None
    return (f"after your steps 1 and 2: expected {problem.expected}, got {problem.got}: "
            f"{problem.why}")


def whole(ctx: CheckContext, name: str, hint: str = "") -> None:
    verify(ctx.student, name, own_parts(ctx.student), hint=hint)


def own_parts(student: Student) -> Parts:
    return PYNOVA._replace(root_invoke=function(student, "root_invoke"))


def check_whole(ctx: CheckContext) -> None:
    whole(ctx, "hello")


def check_bss(ctx: CheckContext) -> None:
    whole(ctx, "bss", "a page with none of the file's bytes needs a fresh frame that reads "
                      "as zero, k.alloc_frame()")


def check_shared(ctx: CheckContext) -> None:
    whole(ctx, "shared", "the data segment ends and the text begins in page 0x2000: it "
                         "needs the rights of both (RW from the data)")


def check_fault(ctx: CheckContext) -> None:
    whole(ctx, "pagefault")


def check_layout(ctx: CheckContext) -> None:
    whole(ctx, "layout2022")


# ----------------------------------------------------------------- lab
def kernel_options(student: Student) -> dict[str, Any]:
    return {"parts": own_parts(student), "poison_frames": True}


def prepare() -> None:
    build(PROGRAMS)


README = """\
The seed's assignment: *extend the kernel so that it is able to run a user
space application*. pynova has booted: the CPU and paging are set up, the
boot loader has put the program's ELF file into physical memory at
`k.module.start`, and the kernel maps one page for the user stack below
`k.stack_top` itself. Your `root_invoke(k)` starts the program, in three
steps:

1. `read_program_headers`: check the ELF header (magic, data == 1,
   type == 2; anything else is `raise ElfError(...)`), find the program
   headers of type PT_LOAD and print each, virt and phys aligned down and
   the size aligned up to whole pages.
2. `map_segments`: the sanity checks, then map every page of every
   segment with `k.insert_mapping(virt, phys, attr)`: PRESENT | USER, plus
   RW for a writable segment; fresh zeroed frames for .bss.
3. `enter_user_mode`: the five words iret pops, `[entry, SEL_USER_CODE,
   0x200, k.stack_top, SEL_USER_DATA]`, and `k.iret(frame)`.

If you are successful, `pynova run example:hello --lab .` prints `Hello world!`.
A frame in the wrong order makes the CPU's iret fault in ring 0: pynova
reports an "unhandled kernel exception" (exit status 134) with the frame
the CPU popped. The checks test each step on its own (with pynova's own
other steps), then your whole root_invoke on harder programs: a big .bss,
a page that two segments share, a page fault, the course's 2022 layout.
More: docs/labs/elf.md in pynova's sources.
"""

LAB = Lab(
    name="elf",
    title="run a user program: ELF headers, page tables, iret",
    summary="the seed's assignment: Ec::root_invoke in three steps",
    files=(WorkspaceFile(STUDENT_FILE, "kernel/root_invoke.py"),),
    readme=README,
    checks=(
        Check(STEP1, 2, check_step1, timeout=2.0),
        Check(ELF_ERRORS, 1, check_elf_errors, timeout=2.0),
        Check(STEP2, 3, check_step2, timeout=2.0),
        Check(STEP3, 2, check_step3, timeout=2.0),
        Check(WHOLE, 1, check_whole, needs=(STEP1, STEP2, STEP3), timeout=2.0),
        Check(BSS, 1, check_bss, needs=(STEP2,), timeout=2.0),
        Check(SHARED, 1, check_shared, needs=(STEP2,), timeout=2.0),
        Check(FAULT, 1, check_fault, needs=(WHOLE,), timeout=2.0),
        Check(LAYOUT, 1, check_layout, needs=(STEP3,), timeout=2.0),
    ),
    parts=("root_invoke",),
    kernel_options=kernel_options,
    prepare=prepare,
    limits=kit.RUN_LIMITS,
)

