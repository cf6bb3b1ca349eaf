"""Pd (NOVA's protection domain): one task's address space and the frames
it owns. The kernel touches user memory only through here, i.e. through the
task's page tables, with the rights a user access would have."""

from __future__ import annotations

from pynova.kernel.kalloc import Kalloc, OutOfMemory
from pynova.kernel.layout import PAGE_SIZE, USER_BREAK_LIMIT, USER_END
from pynova.kernel.loader import Plan
from pynova.kernel.ptab import PRESENT, RW, USER, Ptab
from pynova.machine.memory import PhysicalMemory


class UserMemoryError(Exception):
    """A user pointer that the user itself could not use."""

    def __init__(self, addr: int, write: bool) -> None:
        super().__init__(f"user {'write' if write else 'read'} of unmapped or "
                         f"protected address {addr:#x}")
        self.addr = addr
        self.write = write


class Pd:
    """An address space: page tables plus the frames mapped only here."""

    def __init__(self, memory: PhysicalMemory, kalloc: Kalloc, ptab: Ptab) -> None:
        self.memory = memory
        self.kalloc = kalloc
        self.ptab = ptab
        self.owned: set[int] = set()   # frames to give back on destroy/unmap
        self.initial_break = 0
        self.brk = 0

    # ------------------------------------------------------------ mapping
    def map_fresh(self, virt: int, attr: int) -> int:
        """Map a new zeroed frame at ``virt``; return the frame."""
        frame = self.kalloc.alloc()
        self.owned.add(frame)
        self.ptab.insert_mapping(virt, frame, attr)
        return frame

    def unmap(self, virt: int) -> None:
        frame = self.ptab.unmap(virt)
        if frame is not None and frame in self.owned:
            self.owned.discard(frame)
            self.kalloc.free(frame)

    def load(self, plan: Plan, module_phys: int) -> None:
        """Commit a checked loader plan; on running out of memory nothing
        stays mapped (the caller destroys the Pd)."""
        for page in plan.pages.values():
            if page.file_page is None:
                self.map_fresh(page.virt, page.attr)
                continue
            source = module_phys + page.file_page
            if not page.zero:
                self.ptab.insert_mapping(page.virt, source, page.attr)
                continue
            frame = self.map_fresh(page.virt, page.attr)
            copy = bytearray(self.memory.read(source, PAGE_SIZE))
            for lo, hi in page.zero:
                copy[lo:hi] = bytes(hi - lo)
            self.memory.write(frame, bytes(copy))
        if plan.needs_stack:
            self.map_fresh(plan.stack_page, PRESENT | RW | USER)
        top = max(p.virt for p in plan.pages.values()) + PAGE_SIZE
        if plan.needs_stack and top <= plan.stack_page < USER_BREAK_LIMIT:
            top = plan.stack_page + PAGE_SIZE  # a stack above the segments: the heap above it
        self.initial_break = self.brk = top

    def destroy(self) -> None:
        for frame in sorted(self.owned):
            self.kalloc.free(frame)
        self.owned.clear()
        self.ptab.destroy()

    # -------------------------------------------------------- user access
    def _user_phys(self, virt: int, write: bool) -> int:
        if virt >= USER_END:
            raise UserMemoryError(virt, write)
        walk = self.ptab.walk(virt)
        need = PRESENT | USER | (RW if write else 0)
        if walk.attr & need != need:
            raise UserMemoryError(virt, write)
        return walk.phys  # type: ignore[return-value]

    def read_user(self, virt: int, length: int) -> bytes:
        """Read user memory as the user could, page by page."""
        out = bytearray()
        while length > 0:
            chunk = min(length, PAGE_SIZE - virt % PAGE_SIZE)
            out += self.memory.read(self._user_phys(virt, False), chunk)
            virt, length = virt + chunk, length - chunk
        return bytes(out)

    def write_user(self, virt: int, data: bytes, *, ignore_rw: bool = False) -> None:
        """Write user memory; ``ignore_rw`` lets a debugger patch read-only
        pages (a user-mode write would fault)."""
        pos = 0
        while pos < len(data):
            chunk = min(len(data) - pos, PAGE_SIZE - virt % PAGE_SIZE)
            phys = self._user_phys(virt, not ignore_rw)
            self.memory.write(phys, data[pos:pos + chunk])
            virt, pos = virt + chunk, pos + chunk

    def readable(self, virt: int) -> bool:
        try:
            self._user_phys(virt, False)
            return True
        except UserMemoryError:
            return False


__all__ = ["OutOfMemory", "Pd", "UserMemoryError"]
