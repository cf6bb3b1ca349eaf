"""Pd (NOVA's protection domain): one task's address space and the frames
it owns. The kernel touches user memory only through here, i.e. through the
task's page tables, with the rights a user access would have."""

from __future__ import annotations

from pynova.kernel.kalloc import Kalloc, OutOfMemory
from pynova.kernel.layout import PAGE_SIZE, USER_END
from pynova.kernel.loader import Plan, Run
from pynova.kernel.ptab import PRESENT, RW, USER, Ptab
from pynova.machine.memory import PhysicalMemory


class UserMemoryError(Exception):
    """A user pointer that the user itself could not use."""

    def __init__(self, addr: int, write: bool) -> None:
        super().__init__(f"user {'write' if write else 'read'} of unmapped or "
                         f"protected address {addr:#x}")
        self.addr = addr
        self.write = write


def frames_needed(plan: Plan) -> int:
    """Frames a fresh Pd takes to load ``plan``: fresh and copied pages,
    the stack page and one page table per 4 MiB that anything touches."""
    pages = sum(run.pages for run in plan.runs if run.kind != "file") + plan.needs_stack
    tables: set[int] = set()
    last = -1
    for run in plan.runs:
        first, end = run.virt >> 22, ((run.end - 1) >> 22) + 1
        tables.update(range(max(first, last), end))
        last = end
    if plan.needs_stack:
        tables.add(plan.stack_page >> 22)
    return pages + len(tables)


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
        """Commit a checked loader plan. Running out of memory is found
        before anything is mapped; should it happen anyway, the caller
        destroys the Pd, which gives every frame back."""
        if frames_needed(plan) > self.kalloc.free_count:
            raise OutOfMemory("the module needs more frames than are free")
        for run in plan.runs:
            if run.zero:
                self._map_copy(run, module_phys)
            elif run.file_page is None:
                self.ptab.insert_mappings(run.virt, self._fresh_frames(run.pages), run.attr)
            else:
                first = module_phys + run.file_page
                self.ptab.insert_mappings(
                    run.virt, range(first, first + run.pages * PAGE_SIZE, PAGE_SIZE), run.attr)
        if plan.needs_stack:
            self.map_fresh(plan.stack_page, PRESENT | RW | USER)
        self.initial_break = self.brk = plan.top

    def _fresh_frames(self, count: int) -> list[int]:
        frames = []
        for _ in range(count):
            frames.append(self.kalloc.alloc())
            self.owned.add(frames[-1])
        return frames

    def _map_copy(self, run: Run, module_phys: int) -> None:
        """A page of file bytes and .bss: a private copy with the bss cleared."""
        assert run.file_page is not None and run.pages == 1
        frame = self.map_fresh(run.virt, run.attr)
        copy = bytearray(self.memory.read(module_phys + run.file_page, PAGE_SIZE))
        for lo, hi in run.zero:
            copy[lo:hi] = bytes(hi - lo)
        self.memory.write(frame, bytes(copy))

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
