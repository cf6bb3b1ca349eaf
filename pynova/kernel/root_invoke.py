"""root_invoke: the seed's assignment, "extend the kernel so that it is
able to run a user space application", as pynova does it.

pynova's own, and the solution of lab elf: the region below is what a
student's workspace holds (``pynova lab start elf DIR``), the seed's
guidance as the TODO comments. The kernel calls ``root_invoke`` through
its Parts (parts.py) with a ``RootTask`` (root_task.py), and does the rest
around it: the task's page directory before, the stack page, the initial
break and the first Ec after.

pynova goes further than the seed in step 2 (docs/labs/elf.md): it checks
every segment before it maps anything, maps the last page of a segment
that straddles a page boundary, gives .bss pages fresh zeroed frames, and
gives a page that two segments share the rights of both; the helpers of
``RootTask`` do that work.
"""

# lab elf: begin
from __future__ import annotations

from pynova.kernel.elf import (
    ELF_MAGIC,
    ELFDATA2LSB,
    ET_EXEC,
    PF_W,
    PH,
    PT_LOAD,
    Eh,
    ElfError,
    Ph,
    check_header,
    program_headers,
)
from pynova.kernel.layout import (
    PAGE_SIZE,
    SEL_USER_CODE,
    SEL_USER_DATA,
    USER_EFLAGS,
    align_down,
    align_up,
)
from pynova.kernel.ptab import PRESENT, RW, USER
from pynova.kernel.root_task import Program, RootTask, segment_line


def root_invoke(k: RootTask) -> None:
    """Start the boot module as the first user program (the seed's
    Ec::root_invoke). The kernel has set up the CPU and paging, the boot
    loader has put the program's ELF file at k.module.start, and the
    kernel maps the page for the stack below k.stack_top itself."""
    program = read_program_headers(k)
    map_segments(k, program)
    enter_user_mode(k, program)


def read_program_headers(k: RootTask) -> Program:
    """Step 1: check the ELF header; find and print the loadable segments."""
    # TODO(step 1): check the ELF header, then find and print the PT_LOAD segments.
    #   Read the header, eh = Eh.unpack(k.image), and check the magic
    #   7f 'E' 'L' 'F' (eh.ident[:4] == ELF_MAGIC), data == 1 (eh.data ==
    #   ELFDATA2LSB) and type == 2 (eh.type == ET_EXEC). When anything is
    #   wrong, raise ElfError("what is wrong"): the seed's panic("ELF error");
    #   the kernel prints "ELF error: ..." and stops. (check_header(k.image)
    #   does these checks and a few more.)
    #   Then read the eh.phnum program headers, the i-th at
    #   Ph.unpack(k.image, eh.phoff + i * PH.size), and keep those whose
    #   type is PT_LOAD. Print each with k.print(segment_line(virt, phys,
    #   size, ph.flags)), aligned as the slide asks: virt (ph.vaddr) and
    #   phys (k.module.start + ph.offset) aligned down to a page, size
    #   aligned up to cover every page that the segment's memsz bytes touch.
    #   Return Program(eh.entry, segments): the entry point is the user eip.
    # solution begin
    eh = check_header(k.image)  # the seed's checks, and a few more (elf.py)
    segments = tuple(ph for ph in program_headers(k.image, eh)
                     if ph.type == PT_LOAD and ph.memsz)
    for ph in segments:
        virt = align_down(ph.vaddr)
        size = align_up(ph.vaddr + ph.memsz) - virt
        k.print(segment_line(virt, k.module.start + align_down(ph.offset), size, ph.flags))
    return Program(eh.entry, segments)
    # solution end


def map_segments(k: RootTask, program: Program) -> None:
    """Step 2: map every page of every segment, with the rights it asks for."""
    # TODO(step 2): map every page of every segment with k.insert_mapping.
    #   First the sanity checks, for every segment (raise ElfError):
    #   filesz <= memsz, and vaddr and offset equal modulo PAGE_SIZE.
    #   Then map every page that any byte of the segment touches, from
    #   align_down(vaddr) up to align_up(vaddr + memsz), with
    #   k.insert_mapping(virt, phys, attr). phys is the module's own frame
    #   holding that page's bytes: k.module.start + align_down(offset) +
    #   (virt - align_down(vaddr)). attr is PRESENT | USER, plus RW when
    #   the segment's flags have PF_W (a read-only text must fault on a
    #   write). A page with none of the file's bytes (.bss, when memsz >
    #   filesz) gets a fresh frame that reads as zero: k.alloc_frame().
    #   A page that two segments share gets the rights of both.
    # solution begin
    plan = k.plan(program)  # every check first; then each page's frame and rights
    for run in plan.runs:   # pages mapped alike: the module's frames, fresh ones, a copy
        k.insert_mappings(run.virt, k.frames(run), run.attr)
    # solution end


def enter_user_mode(k: RootTask, program: Program) -> None:
    """Step 3: the first switch from kernel to user mode."""
    # TODO(step 3): switch to user mode with iret, through k.iret(frame).
    #   Prepare the five words iret takes from the stack, in this order:
    #   the entry point (the user eip), SEL_USER_CODE (the new cs), 0x200
    #   (eflags: just IF, interrupts enabled), the user stack pointer
    #   (k.stack_top), SEL_USER_DATA (the new ss). Then k.iret(frame): the
    #   kernel points esp at the five words and executes iret.
    # solution begin
    k.iret([program.entry, SEL_USER_CODE, USER_EFLAGS, k.stack_top, SEL_USER_DATA])
    # solution end
# lab elf: end
