"""insert_mapping: one page into a task's page tables (the seed's slide
"Understanding Ptab::insert_mapping"; Intel SDM vol. 3A, 4.3 "32-Bit
Paging", Figure 4-2 and Tables 4-5, 4-6).

pynova's own, and the solution of lab ptab: the region below is what a
student's workspace holds (``pynova lab start ptab DIR``). The kernel calls
it through its Parts (parts.py), by way of ``Ptab.insert_mapping``.
"""

# lab ptab: begin
from __future__ import annotations

from pynova.kernel.layout import PAGE_MASK
from pynova.kernel.ptab import ATTR_MASK, PRESENT, RW, USER, PageDirectory


def insert_mapping(pt: PageDirectory, virt: int, phys: int, attr: int) -> None:
    """Map the 4 KiB page at ``virt`` to the frame at ``phys`` with ``attr``
    (PRESENT | USER, plus RW for a writable page).

    ``pt.root`` is the page directory's frame; ``pt.read(addr)`` and
    ``pt.write(addr, value)`` read and write the 32-bit word at a physical
    address; ``pt.alloc_frame()`` gives a free frame as it is (holding what
    its last user left), ``pt.alloc_zeroed_frame()`` one that reads as zero.
    An entry holds a frame's address in bits 31..12 (``entry & PAGE_MASK``)
    and its attributes in bits 11..0 (``entry & ATTR_MASK``).
    """
    # TODO(step 1): find the page-directory entry (PDE) of virt.
    #   Bits 31..22 of virt index the directory's 1024 entries of 4 bytes
    #   each; the directory is the frame at pt.root.
    # solution begin
    pde_addr = pt.root + ((virt >> 22) & 0x3FF) * 4
    pde = pt.read(pde_addr)
    # solution end

    # TODO(step 2): make a page table when the PDE has none.
    #   No page table yet (the PDE lacks PRESENT): take a frame for one,
    #   cleared: the MMU reads all 1024 of its entries, and a frame holds
    #   whatever its last user left in it.
    # solution begin
    if not pde & PRESENT:
        pde = pt.alloc_zeroed_frame() | PRESENT
    # solution end

    # TODO(step 3): give the PDE the rights this page needs, and write it.
    #   The CPU allows an access only when both the PDE and the PTE allow
    #   it, so the PDE needs at least attr's PRESENT, RW and USER; keep the
    #   ones it had for the other pages of its table. The PDE holds the
    #   page table's frame in bits 31..12.
    # solution begin
    pde |= attr & (PRESENT | RW | USER)
    pt.write(pde_addr, pde)
    # solution end

    # TODO(step 4): write the page-table entry (PTE) of virt.
    #   Bits 21..12 of virt index the table the PDE points to (the frame in
    #   the PDE's bits 31..12); the PTE holds the frame phys in bits 31..12
    #   and attr in bits 11..0.
    # solution begin
    pte_addr = (pde & PAGE_MASK) + ((virt >> 12) & 0x3FF) * 4
    pt.write(pte_addr, phys | (attr & ATTR_MASK))
    # solution end
# lab ptab: end
