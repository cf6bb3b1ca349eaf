"""Where things are: selectors, the kernel's physical image, virtual layout.

Selectors and the user-mode iret frame come from the seed (slide "Step 3")
and DESIGN.md; the rest is pynova's choice, written down once here.
"""

PAGE_SIZE = 4096
PAGE_MASK = ~(PAGE_SIZE - 1) & 0xFFFFFFFF

# GDT selectors (index << 3 | RPL), seed's include/selectors.h.
SEL_KERN_CODE = 0x08
SEL_KERN_DATA = 0x10
SEL_USER_CODE = 0x1B
SEL_USER_DATA = 0x23
SEL_TSS = 0x28

#: EFLAGS for a new user context: IF set, as the seed's iret frame has it.
USER_EFLAGS = 0x200

# Virtual layout.
USER_END = 0xC0000000          # user space is [0, USER_END)
KERNEL_BASE = 0xC0000000       # physical memory is mapped here, supervisor-only
USER_STACK_TOP = 0x2000        # the seed's stack_top
USER_BREAK_LIMIT = 0xBFFFF000  # highest heap break

# Physical layout of the kernel's own structures ("the kernel image"),
# above the 1 MiB line as a Multiboot kernel would be loaded.
MBI_PHYS = 0x9000              # Multiboot information, below 1 MiB
KERNEL_IMAGE = 0x100000
GDT_PHYS = 0x100000
IDT_PHYS = 0x101000
TSS_PHYS = 0x102000
STUBS_PHYS = 0x103000          # entry/exit code executed by the CPU in ring 0
KSTACK_PHYS = 0x104000         # two pages of kernel stack
KSTACK_TOP_PHYS = 0x106000
KERNEL_PD_PHYS = 0x106000      # the kernel's page directory (template)
KERNEL_END = 0x107000          # modules are loaded from here on

MIN_MEM = 2 << 20
MAX_MEM = 1 << 30              # the kernel's map of RAM must fit above 0xC0000000


def kvirt(phys: int) -> int:
    """The kernel's virtual address of a physical address."""
    return KERNEL_BASE + phys


def align_down(value: int) -> int:
    return value & PAGE_MASK


def align_up(value: int) -> int:
    return (value + PAGE_SIZE - 1) & PAGE_MASK if value < (1 << 32) - PAGE_SIZE else 1 << 32
