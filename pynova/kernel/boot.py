"""Boot: what the seed's start.S and init.cc have done before root_invoke.

Builds the GDT, TSS and IDT in guest RAM, the kernel's page directory (all
of RAM at 0xC0000000, supervisor-only), turns paging on, loads the segment
registers and the SYSENTER MSRs, and saves that ring-0 state as the
kernel's entry state.
"""

from __future__ import annotations

from pynova.kernel import descriptors, layout
from pynova.kernel.ptab import GLOBAL, LARGE, PRESENT, RW
from pynova.machine.cpu import Cpu
from pynova.machine.memory import PhysicalMemory

CR0_PE = 1 << 0     # protected mode
CR0_WP = 1 << 16    # ring 0 honours read-only pages too
CR0_PG = 1 << 31    # paging (SDM vol. 3A, 2.5)
CR4_PSE = 1 << 4    # 4 MiB pages in the kernel half
CR4_PGE = 1 << 7    # global pages
MSR_SYSENTER_CS, MSR_SYSENTER_ESP, MSR_SYSENTER_EIP = 0x174, 0x175, 0x176  # SDM 5.8.7

# Offsets of the ring-0 code stubs in the stubs page.
IRET_STUB = 0x00       # iret: the only way to user mode
SYSENTER_STUB = 0x10   # where SYSENTER_EIP points
EXCEPTION_STUB = 0x20  # where every IDT gate points

IRET = b"\xcf"
HLT_LOOP = b"\xf4\xeb\xfd"  # 1: hlt; jmp 1b


def iret_stub_address() -> int:
    return layout.kvirt(layout.STUBS_PHYS + IRET_STUB)


def write_tables(memory: PhysicalMemory) -> None:
    tss_base = layout.kvirt(layout.TSS_PHYS)
    memory.write(layout.GDT_PHYS, descriptors.gdt(tss_base))
    memory.write(layout.TSS_PHYS, descriptors.tss(layout.kvirt(layout.KSTACK_TOP_PHYS)))
    stubs = layout.kvirt(layout.STUBS_PHYS)
    memory.write(layout.IDT_PHYS, descriptors.idt([stubs + EXCEPTION_STUB] * 256))
    # Under Unicorn the CPU reports exceptions and sysenter to the backend
    # instead of jumping here; the stubs keep the tables truthful.
    memory.write(layout.STUBS_PHYS + IRET_STUB, IRET)
    memory.write(layout.STUBS_PHYS + SYSENTER_STUB, HLT_LOOP)
    memory.write(layout.STUBS_PHYS + EXCEPTION_STUB, HLT_LOOP)


def write_kernel_directory(memory: PhysicalMemory) -> None:
    """Map all RAM at KERNEL_BASE with 4 MiB supervisor pages (SDM Table 4-4)."""
    first = layout.KERNEL_BASE >> 22
    for i in range((memory.size + (1 << 22) - 1) >> 22):
        memory.w32(layout.KERNEL_PD_PHYS + (first + i) * 4,
                   (i << 22) | PRESENT | RW | LARGE | GLOBAL)


def start_cpu(cpu: Cpu) -> None:
    gdt_len = len(descriptors.gdt(0))
    cpu.load_gdtr(layout.kvirt(layout.GDT_PHYS), gdt_len - 1)
    cpu.load_idtr(layout.kvirt(layout.IDT_PHYS), 256 * 8 - 1)
    cpu.write_cr(3, layout.KERNEL_PD_PHYS)
    cpu.write_cr(4, CR4_PSE | CR4_PGE)
    cpu.write_cr(0, CR0_PE | CR0_WP | CR0_PG)
    cpu.load_segment("cs", layout.SEL_KERN_CODE)
    cpu.load_segment("ss", layout.SEL_KERN_DATA)
    # As in NOVA, ds/es/fs/gs hold the user data selector in the kernel too,
    # so that iret to ring 3 leaves them valid.
    for seg in ("ds", "es", "fs", "gs"):
        cpu.load_segment(seg, layout.SEL_USER_DATA)
    cpu.load_tr(layout.SEL_TSS, layout.kvirt(layout.TSS_PHYS), descriptors.TSS_SIZE - 1,
                descriptors.ACCESS_TSS)
    kstack_top = layout.kvirt(layout.KSTACK_TOP_PHYS)
    cpu.write_msr(MSR_SYSENTER_CS, layout.SEL_KERN_CODE)
    cpu.write_msr(MSR_SYSENTER_ESP, kstack_top)
    cpu.write_msr(MSR_SYSENTER_EIP, layout.kvirt(layout.STUBS_PHYS + SYSENTER_STUB))
    cpu.write_reg("esp", kstack_top)
    cpu.save_kernel_state()


def boot_machine(memory: PhysicalMemory, cpu: Cpu) -> None:
    write_tables(memory)
    write_kernel_directory(memory)
    start_cpu(cpu)
