"""``pynova readelf``: the ELF header and program headers the way the
kernel reads them (the fields and numbers of binutils ``readelf -h -l``),
the pages the loader will map, and the verdict of every loader check."""

from __future__ import annotations

from pynova.kernel import loader
from pynova.kernel.elf import (
    EH,
    ELF_MAGIC,
    ET_NAMES,
    HEADER_CHECKS,
    PT_LOAD,
    PT_NAMES,
    Eh,
    ElfError,
    Ph,
    check_header,
    program_headers,
)
from pynova.kernel.layout import KERNEL_END
from pynova.tools.maps import FLAG_BITS

MACHINES = {3: "Intel 80386", 62: "Advanced Micro Devices X86-64", 40: "ARM"}
DATA = {1: "2's complement, little endian", 2: "2's complement, big endian"}
ET_LONG = {1: "Relocatable file", 2: "Executable file", 3: "Shared object file",
           4: "Core file"}


def _field(name: str, value: str) -> str:
    return f"  {name + ':':<34} {value}"


def header_lines(eh: Eh) -> list[str]:
    """``readelf -h``'s ELF header block, same labels and numbers."""
    return [
        "ELF Header:",
        "  Magic:   " + " ".join(f"{b:02x}" for b in eh.ident) + " ",
        _field("Class", {1: "ELF32", 2: "ELF64"}.get(eh.elf_class, f"<unknown: {eh.elf_class}>")),
        _field("Data", DATA.get(eh.data, f"<unknown: {eh.data}>")),
        _field("Version", f"{eh.ident[6]}" + (" (current)" if eh.ident[6] == 1 else "")),
        _field("OS/ABI", "UNIX - System V" if eh.ident[7] == 0 else f"<unknown: {eh.ident[7]}>"),
        _field("ABI Version", str(eh.ident[8])),
        _field("Type", f"{ET_NAMES.get(eh.type, eh.type)} ({ET_LONG.get(eh.type, 'unknown')})"),
        _field("Machine", MACHINES.get(eh.machine, f"<unknown>: {eh.machine:#x}")),
        _field("Version", f"{eh.version:#x}"),
        _field("Entry point address", f"{eh.entry:#x}"),
        _field("Start of program headers", f"{eh.phoff} (bytes into file)"),
        _field("Start of section headers", f"{eh.shoff} (bytes into file)"),
        _field("Flags", f"{eh.flags:#x}"),
        _field("Size of this header", f"{eh.ehsize} (bytes)"),
        _field("Size of program headers", f"{eh.phentsize} (bytes)"),
        _field("Number of program headers", str(eh.phnum)),
        _field("Size of section headers", f"{eh.shentsize} (bytes)"),
        _field("Number of section headers", str(eh.shnum)),
        _field("Section header string table index", str(eh.shstrndx)),
    ]


def ph_line(ph: Ph) -> str:
    name = PT_NAMES.get(ph.type, f"{ph.type:#x}")
    return (f"  {name:<14} {ph.offset:#08x} {ph.vaddr:#010x} {ph.paddr:#010x} "
            f"{ph.filesz:#07x} {ph.memsz:#07x} {ph.flag_string} {ph.align:#x}")


def program_header_lines(phs: list[Ph]) -> list[str]:
    return ["Program Headers:",
            "  Type           Offset   VirtAddr   PhysAddr   FileSiz MemSiz  Flg Align",
            *(ph_line(ph) for ph in phs)]


def attr_text(attr: int) -> str:
    return " ".join(name if attr & bit else "-" * len(name) for bit, name in FLAG_BITS[:3])


def page_lines(plan: loader.Plan) -> list[str]:
    """The pages the kernel will map, a line per run of pages mapped alike
    (the module is loaded at KERNEL_END when it is the only one)."""
    lines = [f"Pages the kernel maps (module at physical {KERNEL_END:#x}):"]
    for run in plan.runs:
        count, s = (f"{run.pages} pages: ", "s") if run.pages > 1 else ("", "")
        if run.kind == "zero":
            source = f"{count}fresh zeroed frame{s}"
        else:
            frame = KERNEL_END + (run.file_page or 0)
            what = f"module frame{s}, no copy" if run.kind == "file" else \
                "private copy, zero-filled " + ", ".join(f"{lo:#x}-{hi:#x}" for lo, hi in run.zero)
            source = f"{count}file offset {run.file_page:#x} -> {frame:#x} ({what})"
        lines.append(f"  {run.virt:#010x}  {attr_text(run.attr)}  {run.kind:<4}  {source}")
    if plan.needs_stack:
        named = f"stack_top {plan.stack_top:#x}" if plan.stack_symbol else \
            f"{plan.stack_top:#x} (no stack_top symbol)"
        lines.append(f"  {plan.stack_page:#010x}  P RW US  zero  stack page below {named} "
                     f"(fresh zeroed frame)")
    return lines


def _verdict(ok: bool, text: str) -> str:
    return f"  {'ok  ' if ok else 'FAIL'}  {text}"


def header_check_lines(image: bytes) -> tuple[list[str], Eh | None]:
    magic = image[:4] == ELF_MAGIC
    lines = [_verdict(magic, "magic is 7f 45 4c 46")]
    if not magic or len(image) < EH.size:
        if magic:
            lines.append(_verdict(False, f"header complete ({len(image)} of {EH.size} bytes)"))
        return lines, None
    eh = Eh.unpack(image)
    lines += [_verdict(check.test(eh, len(image)), check.holds) for check in HEADER_CHECKS]
    return lines, eh


def segment_check_lines(image: bytes, phs: list[Ph]) -> list[str]:
    lines = []
    for i, ph in enumerate(phs):
        if ph.type != PT_LOAD or not ph.memsz:
            continue
        try:
            loader.check_segment(i, ph, len(image))  # the loader's own checks
            lines.append(_verdict(True, f"segment {i}: sizes, alignment, file bytes, "
                                        f"user range"))
        except ElfError as err:
            lines.append(_verdict(False, str(err)))
    return lines


def report(image: bytes) -> tuple[list[str], bool]:
    """All of ``pynova readelf``'s output and whether the loader accepts."""
    checks, eh = header_check_lines(image)
    lines: list[str] = []
    phs: list[Ph] = []
    if eh is not None:
        lines += header_lines(eh) + [""]
        try:
            check_header(image)
            phs = program_headers(image, eh)
            lines += program_header_lines(phs) + [""]
        except ElfError:
            pass
    checks += segment_check_lines(image, phs)
    try:
        plan = loader.plan(image)
    except ElfError as err:
        return lines + ["Loader checks:", *checks, f"verdict: rejected: ELF error: {err}"], False
    lines += page_lines(plan) + [""]
    checks.append(_verdict(True, f"entry point {plan.entry:#x} inside a loadable segment"))
    return lines + ["Loader checks:", *checks, "verdict: accepted"], True
