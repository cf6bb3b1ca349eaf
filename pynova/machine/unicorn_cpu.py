"""The first CPU backend: Unicorn 2 (QEMU's TCG) through its C API.

What Unicorn does not model, and how this backend makes up for it:

* Unicorn reports exceptions to a hook instead of delivering them through
  the guest's IDT. The backend stops there and returns a ``Trap``; the page-
  fault error code, which the hardware would push on the kernel stack, is read
  from the saved CPU state (``error_code`` of QEMU's CPUX86State), whose
  offset is found once per CPU by planting a marker in DR0 next to it.
* ``sysenter`` with a hook installed is not executed by Unicorn: the hook runs
  in the middle of the instruction and the CPU goes on after it. The backend
  calls the kernel's system-call handler there and then does what the
  kernel's ``sysexit`` would: ``esp = ecx``, continue at ``edx``, by moving
  eip before Unicorn steps over the sysenter (in place with the patched
  library, through the register API with the wheel's), so that a bad edx
  faults on the fetch there, as on the hardware.
* The wheel's Unicorn executes ``in``/``out`` in ring 3 without the I/O
  privilege check. The backend's port hooks do it: with CPL > IOPL and a TSS
  without an I/O permission bitmap (the only kind pynova's kernel builds),
  every port access raises #GP(0) (SDM vol. 1, 19.5.2). The CPU state at the
  instruction is saved in the hook and restored after the stop, since
  Unicorn finishes the translation block first. (The patched library does
  the check itself.)
* The wheel's Unicorn lets an ``iret`` in ring 3 enter virtual-8086 mode
  (and so set IOPL 3), and ignores ``syscall``. The backend catches the
  first at the next hook or stop, where it reports the #GP(0) that the
  hardware would have raised at the first privileged instruction (an
  approximation: the instructions in between ran); it reports the second
  as the #UD of a CPU without EFER.SCE. The patched library does both as
  the hardware does.
* Restoring the kernel's saved ring-0 state would also restore the x87/SSE
  registers saved with it; the backend keeps the live ones across it, as
  entering the kernel does on the hardware.
* Unicorn cannot change CS to a more privileged selector with a register
  write. Entering the kernel after a trap therefore restores a ring-0 state
  saved at boot (``enter_kernel``), the backend's analogue of the
  privilege switch of an interrupt gate (Intel SDM vol. 3A, 6.12.1).
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable
from ctypes import byref, c_size_t, c_uint64, c_void_p
from typing import Any

from pynova.machine import uc_abi as uc
from pynova.machine.cpu import GPR_NAMES, Regs, SyscallHandler, Trap, TrapKind
from pynova.machine.decode import Decoder
from pynova.machine.memory import PhysicalMemory

# Past the 32-bit address space: emu_start's "until" never matches an eip.
_NO_UNTIL = 1 << 32
_NO_LIMIT = (1 << 64) - 1
_USER_LIMIT = 0xC0000000
_REGS_ORDER = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "eip",
               "eflags", "cs", "ss", "ds", "es", "fs", "gs")
# Vectors that push an error code (Intel SDM vol. 3A, 6.13, Table 6-1).
_HAS_ERROR_CODE = frozenset({8, 10, 11, 12, 13, 14, 17, 21})
# Vectors of the trap class (int3, into): Unicorn already reports the eip of
# the next instruction for them, as the hardware saves it.
_TRAP_CLASS = frozenset({3, 4})
_DR0_MARKER = 0x5EED_C0DE
_EFLAGS_VM = 1 << 17
_EFLAGS_IOPL = 3 << 12
_MSR_EFER, _EFER_SCE = 0xC0000080, 1
_CR0_TS = 1 << 3  # task switched: x87/SSE instructions raise #NM (SDM vol. 3A, 2.5)
_DEVICE_NOT_AVAILABLE = 7
# x87/SSE state as an opaque blob: each register in a 16-byte slot.
_FPU_NAMES = (("fpcw", "fpsw", "fptag", "mxcsr") + tuple(f"fp{i}" for i in range(8))
              + tuple(f"xmm{i}" for i in range(8)))
_FPU_SLOT = 16
#: FNINIT plus the power-on MXCSR (SDM vol. 1, 8.1.5 and 10.2.3): FCW 0x37F,
#: FSW 0, every tag empty, MXCSR 0x1F80, the registers zero.
FPU_INIT_STATE = b"".join(value.to_bytes(_FPU_SLOT, "little")
                          for value in (0x37F, 0, 0xFFFF, 0x1F80)) + bytes(16 * _FPU_SLOT)
# The patched library's CPUX86State begins with target_ulong regs[16] (the
# target is built 64-bit) and eip: the system-call hook reads and writes
# them in place. Offsets of eax, ecx, edx, esp, esi, edi and eip.
_SYS_VIEW = struct.Struct("<I4xI4xI4x8xI4x8xI4xI4x64xI")
_ENV_EAX, _ENV_ESP, _ENV_EIP = 0, 4 * 8, 16 * 8
_U64 = struct.Struct("<Q")
# The user register file as it lies in the CPU state between runs: the
# general registers in PUSHAD order, eip, eflags (complete there once a run
# has ended: x86_cpu_exec_exit folds the lazy flags in), then the selectors
# of segs[] (SegmentCache: selector, base, limit, flags in 24 bytes, from
# offset 23 * 8), in QEMU's order es, cs, ss, ds, fs, gs. Checked once per
# CPU (_native_state).
_ENV_EFLAGS = 17 * 8
_QEMU_SEG_ORDER = ("es", "cs", "ss", "ds", "fs", "gs")
_USER_VIEW = struct.Struct("<" + "I4x" * 8 + "64x" + "I4x" * 2 + "40x" + "I20x" * 6)
_USER_VIEW_NAMES = GPR_NAMES + ("eip", "eflags") + _QEMU_SEG_ORDER
# The general registers, for writing (a 32-bit write zero-extends).
_GPRS_VIEW = struct.Struct("<8Q")
_ENV_GPR = {name: 8 * i for i, name in enumerate(GPR_NAMES)}


_new_object, _new_tuple = object.__new__, tuple.__new__
# Enum members as globals: TrapKind.X costs a descriptor call each time.
_BUDGET, _SYSCALL_STOP = TrapKind.BUDGET, TrapKind.SYSCALL_STOP


class CpuError(RuntimeError):
    """The emulator itself failed (not a guest exception)."""


def _check(err: int, what: str, lib: ctypes.CDLL) -> None:
    if err != uc.UC_ERR_OK:
        raise CpuError(f"{what}: {lib.uc_strerror(err).decode()}")


class _RegBatch:
    """Preallocated arguments for one uc_reg_read_batch/uc_reg_write_batch call."""

    def __init__(self, names: tuple[str, ...], slot: int = 8) -> None:
        n = len(names)
        self.count = n
        self.ids = (ctypes.c_int * n)(*(uc.REG[name] for name in names))
        self.values = (ctypes.c_char * (slot * n))()
        base = ctypes.addressof(self.values)
        self.ptrs = (c_void_p * n)(*(base + slot * i for i in range(n)))
        # The low 32 bits of each 8-byte slot, in one C call: iterating or
        # unpacking a ctypes array costs microseconds on the hot paths.
        self.layout = struct.Struct("<" + "I4x" * n)

    def read(self) -> tuple[int, ...]:
        return self.layout.unpack_from(self.values)

    def fill(self, values: tuple[int, ...]) -> None:
        self.layout.pack_into(self.values, 0, *values)


class _FpuRegion:
    """The patched library's x87/SSE state: its bytes in the live CPU state
    (``live``), those of the initial state, and the rest of the CPU state
    and of the saved kernel states (what uc_context_restore copies: the
    parts before and after the x87/SSE state; ``kernels[fpu_trap]``), so
    that entering the kernel copies all but the x87/SSE state in place."""

    __slots__ = ("live", "initial", "env_head", "env_tail", "kernels")

    def __init__(self, env: memoryview, kernels: tuple[memoryview, memoryview],
                 start: int, end: int) -> None:
        self.live = env[start:end]
        self.initial = b""
        self.env_head, self.env_tail = env[:start], env[end:]
        self.kernels = tuple((kernel[:start], kernel[end:]) for kernel in kernels)


class UnicornCpu:
    """One IA-32 core emulated by Unicorn, running on ``memory`` as its RAM."""

    def __init__(self, memory: PhysicalMemory) -> None:
        library = uc.load_library()
        self._lib = lib = library.lib
        #: "2.1.4 patched" or "2.1.4 wheel", for the banner
        self.version = uc.version_string(library)
        #: pynova's build: instructions counted by the CPU, registers in place
        self.native = library.patched
        self._uc = c_void_p()
        _check(lib.uc_open(uc.UC_ARCH_X86, uc.UC_MODE_32, byref(self._uc)), "uc_open", lib)
        _check(lib.uc_mem_map_ptr(self._uc, 0, memory.size, uc.UC_PROT_ALL,
                                  memory.host_address), "uc_mem_map_ptr", lib)
        # An empty set of exit addresses instead of emu_start's "until": no
        # eip is one, and Unicorn no longer invalidates code at until - 1
        # after every run (uc_exit_invalidate_iter in qemu/softmmu/cpus.c:
        # a page walk for an address that is never mapped, each thread switch).
        _check(lib.uc_ctl(self._uc, uc.uc_ctl_write(uc.UC_CTL_UC_USE_EXITS, 1), ctypes.c_int(1)),
               "uc_ctl(UC_CTL_UC_USE_EXITS)", lib)
        self._memory = memory
        self.syscall_handler: SyscallHandler | None = None
        self.fpu_handler: Callable[[], None] | None = None
        #: Whether a run stopped by #NM goes on within the budget it had
        #: left: with the patched library always; with the wheel's only
        #: while counting (Unicorn's own count starts afresh at each start).
        self.lazy_fpu = library.patched
        self._insns = 0  # counted by the block hook (wheel)
        self._pending: Trap | None = None
        self._resume_at: int | None = None
        self._callbacks: list[object] = []  # keep ctypes thunks alive
        self._hooks: dict[object, int] = {}
        self._one = c_uint64()
        # What the wheel's sysenter hook reads in one call.
        self._sys = _RegBatch(("eax", "esi", "edi", "ecx", "edx", "eip", "esp", "eflags"))
        self._all = _RegBatch(_REGS_ORDER)
        self._gprs = _RegBatch(GPR_NAMES)
        self._one_ref = byref(self._one)
        # uc_emu_start's arguments as ctypes objects, for a function object
        # without argtypes: converting Python ints costs more than the call.
        self._emu_start = lib["uc_emu_start"]
        self._begin, self._until, self._zero = c_uint64(), c_uint64(_NO_UNTIL), c_uint64(0)
        self._read_batch = lib.uc_reg_read_batch
        self._write_reg = lib.uc_reg_write
        self._sys_ids, self._sys_ptrs = self._sys.ids, self._sys.ptrs
        self._sys_read = self._sys.read
        self._eax_id = uc.REG["eax"]
        self._esp_id = uc.REG["esp"]
        self._eip_id = uc.REG["eip"]
        self._fpu = _RegBatch(_FPU_NAMES, _FPU_SLOT)
        self._fpu_in_buffer = False  # the buffer has the live x87/SSE state
        # The kernel's entry state, and the same with CR0.TS set (enter_kernel).
        self._kernel_ctx = self._alloc_context()
        self._kernel_ts_ctx = self._alloc_context()
        self._scratch_ctx = self._alloc_context()
        self._error_code_offset = self._locate_error_code()
        self._kernel_insns = 0  # the kernel's irets, in the native count
        self._iret_insns = 0    # the kernel's irets in this run (wheel)
        self._wheel_budget: int | None = None
        self._count_hooked = False  # Unicorn's count hook is installed (wheel)
        self._wheel_start = 0
        self._err = 0
        self._fpu_region: _FpuRegion | None = None
        if self.native:
            # _counter[0]: instructions executed; [1]: the CPU stops there
            self._counter, self._env = self._native_state()
            self._env_words = self._env.cast("Q")  # eip is word 16
            self._count_base = self._counter[0]
            self._fpu_region = self._locate_fpu()
            self._add_hook(uc.UC_HOOK_INSN, uc.HOOK_SYSCALL(self._sysenter_in_place()),
                           extra=(ctypes.c_int(uc.UC_X86_INS_SYSENTER),))
        else:
            self._add_hook(uc.UC_HOOK_INSN, uc.HOOK_SYSCALL(self._guarded(self._on_sysenter)),
                           extra=(ctypes.c_int(uc.UC_X86_INS_SYSENTER),))
            self._add_hook(uc.UC_HOOK_INSN, uc.HOOK_SYSCALL(self._guarded(self._on_syscall)),
                           extra=(ctypes.c_int(uc.UC_X86_INS_SYSCALL),))
        self._add_hook(uc.UC_HOOK_INTR, uc.HOOK_INTR(self._guarded(self._on_interrupt)))
        self._io_ctx = self._alloc_context()
        self._restore_io_ctx = False
        self._add_hook(uc.UC_HOOK_INSN, uc.HOOK_IN(self._guarded(self._on_port_in)),
                       extra=(ctypes.c_int(uc.UC_X86_INS_IN),))
        self._add_hook(uc.UC_HOOK_INSN, uc.HOOK_OUT(self._guarded(self._on_port_out)),
                       extra=(ctypes.c_int(uc.UC_X86_INS_OUT),))
        self._breakpoints: dict[int, int] = {}
        self._skip_breakpoint: int | None = None
        self._stop_requested = False
        self._hook_error: BaseException | None = None
        self._watchpoints: dict[tuple[int, int, str], int] = {}
        self._after_access_hook: int | None = None
        self._watch_hit: int | None = None
        self._block_sizes: dict[tuple[int, int], int] = {}
        self._block_start = 0
        self._block_size = 0
        self._counting_hook: int | None = None
        self._decoder: Decoder | None = None
        #: Reads user code at a virtual address; the kernel provides it,
        #: since only it knows the address space (used for counting).
        self.fetch_code: Callable[[int, int], bytes] | None = None

    # ----------------------------------------------------------- plumbing
    def _add_hook(self, kind: int, callback: object, begin: int = 1, end: int = 0,
                  extra: tuple = ()) -> int:
        handle = c_size_t()
        err = self._lib.uc_hook_add(self._uc, byref(handle), kind, callback, None,
                                    c_uint64(begin), c_uint64(end), *extra)
        _check(err, "uc_hook_add", self._lib)
        self._callbacks.append(callback)
        return handle.value

    def _del_hook(self, handle: int) -> None:
        _check(self._lib.uc_hook_del(self._uc, c_size_t(handle)), "uc_hook_del", self._lib)

    def _guarded(self, hook: Callable[..., Any]) -> Callable[..., Any]:
        """A hook that does not let an exception vanish inside ctypes (which
        would print it and carry on): it stops the CPU, and run() raises it."""
        def guarded(*args: Any) -> Any:
            try:
                return hook(*args)
            except BaseException as err:  # noqa: BLE001 - re-raised by run()
                self._hook_failed(err)
                return 0
        return guarded

    def _hook_failed(self, err: BaseException) -> None:
        if self._hook_error is None:
            self._hook_error = err
        self._lib.uc_emu_stop(self._uc)

    def _alloc_context(self) -> c_void_p:
        ctx = c_void_p()
        _check(self._lib.uc_context_alloc(self._uc, byref(ctx)), "uc_context_alloc", self._lib)
        return ctx

    def _native_state(self) -> tuple[memoryview, memoryview]:
        """The patched library's counter and limit (a view of two unsigned
        64-bit words: indexing one costs less than a ctypes value), and a
        view of the CPU state's user register file (_USER_VIEW); checked
        against the register API once, so that a layout that differs fails
        here, not in a guest. (Segment registers take any selector with
        CR0.PE clear: the check runs in a state it then throws away.)"""
        lib = self._lib
        counter = lib.uc_pynova_counter(self._uc)
        env = lib.uc_pynova_cpu_state(self._uc)
        if not counter or not env:
            raise CpuError("the patched libunicorn did not give its CPU state")
        view = memoryview((ctypes.c_char * _USER_VIEW.size).from_address(env)).cast("B")
        markers = {name: 0x11 * (i + 1) for i, name in enumerate(GPR_NAMES + ("eip",))}
        markers["eflags"] = 0x8D7  # OF SF ZF AF PF CF: the flags QEMU computes lazily
        markers.update({name: 0x18 + 8 * i for i, name in enumerate(_QEMU_SEG_ORDER)})
        _check(lib.uc_context_save(self._uc, self._scratch_ctx), "context_save", lib)
        self._api_write_reg("cr0", 0)
        for name in _USER_VIEW_NAMES:
            self._api_write_reg(name, markers[name])
        in_place = _USER_VIEW.unpack_from(view)
        _U64.pack_into(view, _ENV_GPR["ebx"], 0x99)
        written = self.read_reg("ebx")
        _check(lib.uc_context_restore(self._uc, self._scratch_ctx), "context_restore", lib)
        if in_place != tuple(markers[name] for name in _USER_VIEW_NAMES) or written != 0x99:
            raise CpuError("unexpected CPU state layout in the patched libunicorn")
        return memoryview((ctypes.c_char * 16).from_address(counter)).cast("B").cast("Q"), view

    def _locate_fpu(self) -> _FpuRegion | None:
        """Where the x87/SSE state lies in the CPU state and in the saved
        kernel state, found by changing registers and seeing which bytes
        change (QEMU's CPUX86State: fpstt, fpus, fpuc, ... up to xmm_regs).
        None when the layout is not the expected one: the register API
        is used then."""
        env = self._lib.uc_pynova_cpu_state(self._uc)
        size = self._lib.uc_context_size(self._uc)

        def changed(write: Callable[[int], None], first: int, second: int) -> tuple[int, int]:
            """(first, last) offsets of the bytes that change."""
            write(first)
            before = int.from_bytes(ctypes.string_at(env, size), "little")
            write(second)
            diff = before ^ int.from_bytes(ctypes.string_at(env, size), "little")
            return ((diff & -diff).bit_length() - 1) // 8, (diff.bit_length() - 1) // 8

        def xmm0(low: int) -> None:
            value = (ctypes.c_uint64 * 2)(low, 0)
            self._lib.uc_reg_write(self._uc, uc.REG["xmm0"], byref(value))

        top = changed(lambda v: self._api_write_reg("fpsw", v), 0, 5 << 11)  # fpstt
        control = changed(lambda v: self._api_write_reg("fpcw", v), 0x37F, 0xA7E)  # fpuc
        vector = changed(xmm0, 1, 3)
        self._api_write_reg("fpsw", 0)
        if top[0] != top[1] or control[0] != top[0] + 6 or vector[0] != vector[1] \
                or vector[0] < control[0]:
            return None
        start, end = top[0], vector[0] + 8 * 64  # through XMM7 (ZMMReg: 64 bytes)
        # A context is a header, then the CPU state's first context_size
        # bytes (uc_context in uc_priv.h; its first field is context_size).
        self._lib.uc_context_save(self._uc, self._scratch_ctx)
        state_size = ctypes.c_size_t.from_address(self._scratch_ctx.value or 0).value
        header = size - state_size
        saved = ctypes.string_at(self._scratch_ctx.value or 0, size)
        if not 0 < header < size or end > state_size \
                or saved[header:] != ctypes.string_at(env, state_size):
            return None

        def state(address: int) -> memoryview:
            return memoryview((ctypes.c_char * state_size).from_address(address)).cast("B")
        kernels = (state((self._kernel_ctx.value or 0) + header),
                   state((self._kernel_ts_ctx.value or 0) + header))
        region = _FpuRegion(state(env), kernels, start, end)
        b = self._fpu
        ctypes.memmove(b.values, FPU_INIT_STATE, len(b.values))
        self._lib.uc_reg_write_batch(self._uc, b.ids, b.ptrs, b.count)
        region.initial = bytes(region.live)
        return region

    def _locate_error_code(self) -> int:
        """Offset of CPUX86State.error_code inside a saved context.

        In QEMU's CPUX86State (target/i386/cpu.h) ``int error_code`` is
        followed by ``int exception_is_int``, ``target_ulong
        exception_next_eip`` and ``target_ulong dr[8]``; Unicorn builds the
        x86 target 64-bit, so error_code lies 16 bytes before dr[0].
        """
        self.write_reg("dr0", _DR0_MARKER)
        self._lib.uc_context_save(self._uc, self._scratch_ctx)
        size = self._lib.uc_context_size(self._uc)
        raw = ctypes.string_at(self._scratch_ctx, size)
        self.write_reg("dr0", 0)
        at = raw.find(_DR0_MARKER.to_bytes(8, "little"))
        if at < 16:
            raise CpuError("cannot find the exception state in Unicorn's CPU context")
        return at - 16

    def _exception_state(self) -> tuple[int, bool]:
        self._lib.uc_context_save(self._uc, self._scratch_ctx)
        base = (self._scratch_ctx.value or 0) + self._error_code_offset
        error_code = ctypes.c_int32.from_address(base).value & 0xFFFFFFFF
        is_software_int = ctypes.c_int32.from_address(base + 4).value != 0
        return error_code, is_software_int

    # ----------------------------------------------------------- registers
    def read_reg(self, name: str) -> int:
        self._put_back_fpu()
        self._one.value = 0  # a 16-bit register (cs, fpcw) fills only two bytes
        self._lib.uc_reg_read(self._uc, uc.REG[name], byref(self._one))
        return self._one.value & 0xFFFFFFFF

    def write_reg(self, name: str, value: int) -> None:
        if self.native and name in _ENV_GPR:  # a plain store, as uc_reg_write does
            _U64.pack_into(self._env, _ENV_GPR[name], value & 0xFFFFFFFF)
            return
        self._api_write_reg(name, value)

    def _api_write_reg(self, name: str, value: int) -> None:
        self._put_back_fpu()
        self._one.value = value & 0xFFFFFFFF
        _check(self._lib.uc_reg_write(self._uc, uc.REG[name], byref(self._one)),
               f"write {name}", self._lib)

    def read_regs(self) -> Regs:
        """The user register file, between runs."""
        if self.native:  # in place: one unpack, no Regs.__init__ (every trap)
            r = _new_object(Regs)
            (r.eax, r.ecx, r.edx, r.ebx, r.esp, r.ebp, r.esi, r.edi, r.eip, r.eflags,
             r.es, r.cs, r.ss, r.ds, r.fs, r.gs) = _USER_VIEW.unpack_from(self._env)
            return r
        b = self._all
        self._lib.uc_reg_read_batch(self._uc, b.ids, b.ptrs, b.count)
        return Regs(*b.read())

    def write_regs(self, regs: Regs, esp: int) -> None:
        """Write the general-purpose registers, with ``esp`` for esp."""
        if self.native:
            _GPRS_VIEW.pack_into(self._env, 0, regs.eax, regs.ecx, regs.edx, regs.ebx, esp,
                                 regs.ebp, regs.esi, regs.edi)
            return
        b = self._gprs
        b.fill((regs.eax, regs.ecx, regs.edx, regs.ebx, esp, regs.ebp, regs.esi, regs.edi))
        self._lib.uc_reg_write_batch(self._uc, b.ids, b.ptrs, b.count)

    # With the patched library the x87/SSE state is its bytes in the CPU
    # state (_FpuRegion), copied in place. With the wheel's it goes through
    # self._fpu's buffer: after enter_kernel that holds the user's state,
    # which goes back into the CPU (the saved kernel state has its own) only
    # before the CPU next runs or is asked for a register.
    def switch_fpu(self, state: bytes | None) -> bytes:
        """Load an x87/SSE state (an opaque blob that this returned before;
        None: the initial one) and return the one it replaces."""
        region = self._fpu_region
        if region is not None:
            live = region.live
            previous = bytes(live)
            live[:] = region.initial if state is None else state
            return previous
        b = self._fpu
        if not self._fpu_in_buffer:
            self._read_batch(self._uc, b.ids, b.ptrs, b.count)
            self._fpu_in_buffer = True
        previous = bytes(b.values)
        state = FPU_INIT_STATE if state is None else state
        if previous != state:
            ctypes.memmove(b.values, state, len(b.values))
        return previous

    def _put_back_fpu(self) -> None:
        if self._fpu_in_buffer:
            b = self._fpu
            self._lib.uc_reg_write_batch(self._uc, b.ids, b.ptrs, b.count)
            self._fpu_in_buffer = False

    def read_cr(self, n: int) -> int:
        return self.read_reg(f"cr{n}")

    def write_cr(self, n: int, value: int) -> None:
        self.write_reg(f"cr{n}", value)

    def write_msr(self, msr: int, value: int) -> None:
        m = uc.X86Msr(msr, value)
        _check(self._lib.uc_reg_write(self._uc, uc.REG["msr"], byref(m)), "wrmsr", self._lib)

    def read_msr(self, msr: int) -> int:
        m = uc.X86Msr(msr, 0)
        _check(self._lib.uc_reg_read(self._uc, uc.REG["msr"], byref(m)), "rdmsr", self._lib)
        return m.value

    def _write_mmr(self, name: str, selector: int, base: int, limit: int, flags: int) -> None:
        m = uc.X86Mmr(selector, base, limit, flags)
        _check(self._lib.uc_reg_write(self._uc, uc.REG[name], byref(m)), f"load {name}",
               self._lib)

    def read_table_register(self, name: str) -> tuple[int, int]:
        m = uc.X86Mmr()
        self._lib.uc_reg_read(self._uc, uc.REG[name], byref(m))
        return m.base, m.limit

    def load_gdtr(self, base: int, limit: int) -> None:
        self._write_mmr("gdtr", 0, base, limit, 0)

    def load_idtr(self, base: int, limit: int) -> None:
        self._write_mmr("idtr", 0, base, limit, 0)

    def load_tr(self, selector: int, base: int, limit: int, access: int) -> None:
        self._write_mmr("tr", selector, base, limit, access << 8)

    def load_segment(self, name: str, selector: int) -> None:
        """Load a segment register; the CPU checks it against the GDT."""
        self.write_reg(name, selector)

    # ------------------------------------------------------ kernel entry
    def save_kernel_state(self) -> None:
        """Remember the current (ring-0) state as the kernel's entry state,
        and the same with CR0.TS set."""
        self._put_back_fpu()
        lib = self._lib
        _check(lib.uc_context_save(self._uc, self._kernel_ctx), "context_save", lib)
        cr0 = self.read_cr(0)
        self.write_cr(0, cr0 | _CR0_TS)
        _check(lib.uc_context_save(self._uc, self._kernel_ts_ctx), "context_save", lib)
        self.write_cr(0, cr0)

    def enter_kernel(self, fpu_trap: bool = False) -> None:
        """Switch the CPU to the kernel's ring-0 entry state, with CR0.TS
        set for ``fpu_trap``. The x87/SSE registers stay as they are (the
        saved states have them too)."""
        region = self._fpu_region
        if region is not None:  # what uc_context_restore does, but in place
            head, tail = region.kernels[fpu_trap]
            region.env_head[:] = head
            region.env_tail[:] = tail
            return
        b, lib = self._fpu, self._lib
        if not self._fpu_in_buffer:
            lib.uc_reg_read_batch(self._uc, b.ids, b.ptrs, b.count)
            self._fpu_in_buffer = True
        _check(lib.uc_context_restore(self._uc, self._kernel_ts_ctx if fpu_trap
                                      else self._kernel_ctx), "context_restore", lib)

    # ------------------------------------------------------------- hooks
    def _sysenter_in_place(self) -> Callable[[int, int], None]:
        """The hook on the hot path of every system call with the patched
        library: registers read and written in the CPU state itself, all it
        needs bound in a closure. Moving eip to edx is the sysexit (the
        patch does not step over the sysenter then; a bad edx faults on the
        fetch, as on the hardware)."""
        cpu, env = self, self._env
        unpack, put = _SYS_VIEW.unpack_from, _U64.pack_into

        def on_sysenter(_uc: int, _data: int) -> None:
            # All of it in the try: an exception raised in this thread from
            # outside (the time limit's TimeUp) may land on any line.
            try:
                eax, ecx, edx, esp, esi, edi, eip = unpack(env)
                result = cpu.syscall_handler(eax & 0xFF, esi, edi, ecx, edx, eip)  # type: ignore[misc]
                if result is not None:
                    put(env, _ENV_EAX, result & 0xFFFFFFFF)
                if ecx != esp:
                    put(env, _ENV_ESP, ecx)
                if cpu._pending is None:
                    if edx != eip:
                        put(env, _ENV_EIP, edx)
                    else:  # an unmoved eip reads as "step over": start again there
                        cpu._resume_at = edx
                        cpu._lib.uc_emu_stop(cpu._uc)
            except BaseException as err:  # noqa: BLE001 - re-raised by run()
                cpu._hook_failed(err)
        return on_sysenter

    def _on_sysenter(self, _uc: int, _data: int) -> None:
        # The hot path of every system call with the wheel's library: one
        # batched read, the kernel's handler, at most two single writes.
        self._read_batch(self._uc, self._sys_ids, self._sys_ptrs, 8)
        v = self._sys_read()
        ecx, edx, eip = v[3], v[4], v[5]
        if v[7] & (_EFLAGS_VM | _EFLAGS_IOPL):
            self._escaped_ring3(eip)
            return
        result = self.syscall_handler(v[0] & 0xFF, v[1], v[2], ecx, edx, eip)  # type: ignore[misc]
        if result is not None:
            self._one.value = result & 0xFFFFFFFF
            self._write_reg(self._uc, self._eax_id, self._one_ref)
        if ecx != v[6]:
            self._one.value = ecx
            self._write_reg(self._uc, self._esp_id, self._one_ref)
        if edx != eip + 2 and self._pending is None:
            self._sysexit_to(edx, eip)

    def _sysexit_to(self, edx: int, eip: int) -> None:
        """Continue at edx (wheel). Unicorn adds the sysenter's length to
        eip after the hook: 2 unless prefixed, when it starts again at edx
        instead (a new emu_start, which a stop request overtakes)."""
        try:
            plain = self.fetch_code is None or self.fetch_code(eip, 1) == b"\x0f"
        except Exception:  # noqa: BLE001 - unreadable: the CPU just fetched it, so no
            plain = True
        if plain:
            self._one.value = (edx - 2) & 0xFFFFFFFF
            self._write_reg(self._uc, self._eip_id, self._one_ref)
        else:
            self._resume_at = edx
            self._lib.uc_emu_stop(self._uc)

    def _on_syscall(self, _uc: int, _data: int) -> None:
        """``syscall`` (wheel only): a CPU with EFER.SCE clear raises #UD
        (SDM vol. 2B, SYSCALL); the patched library does it itself."""
        if not self.read_msr(_MSR_EFER) & _EFER_SCE:
            eip = self.read_reg("eip")
            self._record(Trap(TrapKind.EXCEPTION, eip, 6), eip)

    def _escaped_ring3(self, eip: int) -> None:
        """The wheel's Unicorn let ring 3 into virtual-8086 mode (or to IOPL
        > 0) through iret, which the hardware refuses (SDM vol. 2A, IRET):
        report the #GP(0) that the next privileged instruction would raise."""
        self._record(Trap(TrapKind.EXCEPTION, eip, 13, 0, 0), eip)

    def _on_interrupt(self, _uc: int, vector: int, _data: int) -> None:
        eip = self.read_reg("eip")
        if vector == _DEVICE_NOT_AVAILABLE and self.fpu_handler is not None \
                and self.read_reg("cs") & 3 == 3:
            self._lazy_fpu(eip)
            return
        error_code, software = self._exception_state()
        if software and vector not in _TRAP_CLASS:
            # "int n" through a gate of DPL 0 from ring 3 raises #GP with the
            # IDT index as error code (SDM vol. 3A, 6.12.1.1 and 6.13).
            error_code, vector = (vector << 3) | 2, 13
        elif vector not in _HAS_ERROR_CODE:
            error_code = 0
        cr2 = self.read_reg("cr2") if vector == 14 else 0
        self._record(Trap(TrapKind.EXCEPTION, eip, vector, error_code, cr2), eip)

    def _lazy_fpu(self, eip: int) -> None:
        """#NM in user mode: the first x87/SSE instruction since the kernel
        set CR0.TS (SDM vol. 3A, 2.5). The kernel's handler gives the
        running context the x87/SSE state; then, as its clts and iret
        would, TS is cleared and the instruction runs again (the count
        has taken it back), in the same run."""
        self.fpu_handler()  # type: ignore[misc]
        self.write_cr(0, self.read_cr(0) & ~_CR0_TS)
        self._uncount_from(eip)
        if eip in self._breakpoints:  # it was reached already: no second stop there
            self._skip_breakpoint = eip
        self._resume_at = eip
        self._lib.uc_emu_stop(self._uc)

    def _on_port_in(self, _uc: int, port: int, size: int, _data: int) -> int:
        self._check_io()
        return 0xFFFFFFFF  # no device answers: the bus floats high

    def _on_port_out(self, _uc: int, port: int, size: int, value: int, _data: int) -> None:
        self._check_io()

    def _check_io(self) -> None:
        cpl = self.read_reg("cs") & 3
        eflags = self.read_reg("eflags")
        iopl = (eflags >> 12) & 3
        if (cpl > iopl or (cpl == 3 and eflags & _EFLAGS_VM)) and self._pending is None:
            self._lib.uc_context_save(self._uc, self._io_ctx)
            self._restore_io_ctx = True
            eip = self.read_reg("eip")
            self._record(Trap(TrapKind.EXCEPTION, eip, 13, 0, 0), eip)

    def _record(self, trap: Trap, eip: int) -> None:
        if self._pending is None:
            self._pending = trap
            self._uncount_from(eip)
        self._lib.uc_emu_stop(self._uc)

    def stop_after_syscall(self, resume_eip: int | None = None) -> None:
        """Called by the system-call handler: stop once this call returns."""
        if resume_eip is None:
            resume_eip = _SYS_VIEW.unpack_from(self._env)[2] if self.native else self._sys.read()[4]
        eip = resume_eip
        self._pending = Trap(_SYSCALL_STOP, eip & 0xFFFFFFFF)
        self._lib.uc_emu_stop(self._uc)

    def request_stop(self) -> None:
        """Stop the running CPU soon; safe to call from another thread. A
        request made while the CPU is not running stops the next run as soon
        as it reaches user mode."""
        self._stop_requested = True
        self._lib.uc_emu_stop(self._uc)

    # ------------------------------------------------- instruction counts
    @property
    def instructions(self) -> int:
        """Executed user instructions (while counting)."""
        if self.native:
            return self._counter[0] - self._count_base - self._kernel_insns
        return self._insns

    def set_counting(self, on: bool) -> None:
        """Count executed user instructions in ``instructions``: always so
        with the patched library; with the wheel's, a block hook (slower)."""
        if self.native:
            return
        if on and self._counting_hook is None:
            self._counting_hook = self._add_hook(
                uc.UC_HOOK_BLOCK, uc.HOOK_CODE(self._guarded(self._on_block)))
        elif not on and self._counting_hook is not None:
            self._del_hook(self._counting_hook)
            self._counting_hook = None
        self.lazy_fpu = on

    @property
    def counting(self) -> bool:
        return self.native or self._counting_hook is not None

    def _on_block(self, _uc: int, address: int, size: int, _data: int) -> None:
        if address >= _USER_LIMIT:
            # The kernel's only ring-0 code is the lone iret of its exit path
            # (a block of one instruction); it is not a user instruction.
            self._iret_insns += 1
            self._block_size = 0
            return
        self._block_start, self._block_size = address, size
        self._insns += self._insns_in(address, size)

    def _insns_in(self, address: int, size: int, upto: int | None = None) -> int:
        key = (address, size if upto is None else -upto)
        n = self._block_sizes.get(key)
        if n is None:
            n = self._count_decoded(address, size, upto)
            self._block_sizes[key] = n
        return n

    def _count_decoded(self, address: int, size: int, upto: int | None) -> int:
        if self._decoder is None:
            self._decoder = Decoder()  # loads libcapstone: only when counting
        code = self.fetch_code(address, size) if self.fetch_code else b""
        return self._decoder.count(code, address, upto)

    def _uncount_from(self, eip: int) -> None:
        """Take back the instructions of the current block from eip on: they
        were counted when the block began but did not complete."""
        if self._counting_hook is None or not self._block_size:
            return
        start, size = self._block_start, self._block_size
        if start <= eip < start + size:
            done = self._insns_in(start, size, upto=eip)
            self._insns -= self._insns_in(start, size) - done
        self._block_size = 0

    # --------------------------------------------------------- debugging
    def add_breakpoint(self, address: int) -> None:
        if address in self._breakpoints:
            return
        self._breakpoints[address] = self._add_hook(
            uc.UC_HOOK_CODE, uc.HOOK_CODE(self._guarded(self._on_breakpoint)), address, address)
        self._flush_code()

    def remove_breakpoint(self, address: int) -> None:
        handle = self._breakpoints.pop(address, None)
        if handle is not None:
            self._del_hook(handle)
            self._flush_code()

    def add_watchpoint(self, phys: int, length: int, kind: str, report_as: int) -> None:
        """Stop after an instruction that writes ("watch"), reads ("rwatch")
        or touches ("awatch") physical [phys, phys+length), reporting the
        hit as ``report_as``, as a debug register would (SDM vol. 3B, 17.2.4:
        data breakpoints are traps). Unicorn's memory hooks see physical
        addresses once paging is on, so the caller translates (and splits
        at page boundaries). While any is set, every instruction passes a
        check."""
        key = (phys, length, kind)
        if key in self._watchpoints:
            return
        access = {"watch": uc.UC_HOOK_MEM_WRITE, "rwatch": uc.UC_HOOK_MEM_READ,
                  "awatch": uc.UC_HOOK_MEM_READ | uc.UC_HOOK_MEM_WRITE}[kind]

        def hit(_uc: int, _type: int, _addr: int, _size: int, _value: int, _d: int) -> bool:
            if self._watch_hit is None:
                self._watch_hit = report_as
            return True

        self._watchpoints[key] = self._add_hook(access, uc.HOOK_MEM(self._guarded(hit)), phys,
                                                phys + max(length, 1) - 1)
        if self._after_access_hook is None:
            self._after_access_hook = self._add_hook(
                uc.UC_HOOK_CODE, uc.HOOK_CODE(self._guarded(self._on_instruction)))
        self._flush_code()

    def remove_watchpoint(self, phys: int, length: int, kind: str) -> None:
        handle = self._watchpoints.pop((phys, length, kind), None)
        if handle is None:
            return
        self._del_hook(handle)
        if not self._watchpoints and self._after_access_hook is not None:
            self._del_hook(self._after_access_hook)
            self._after_access_hook = None
        self._flush_code()

    def _on_instruction(self, _uc: int, address: int, _size: int, _data: int) -> None:
        """Before each instruction while watchpoints exist: the previous one
        hit a watchpoint, so stop here, after it."""
        if self._watch_hit is not None and address < _USER_LIMIT:
            hit, self._watch_hit = self._watch_hit, None
            self._record(Trap(TrapKind.WATCHPOINT, address, address=hit), address)

    def _on_breakpoint(self, _uc: int, address: int, _size: int, _data: int) -> None:
        if self._skip_breakpoint == address:
            self._skip_breakpoint = None
            return
        self._record(Trap(TrapKind.BREAKPOINT, address), address)

    def _flush_code(self) -> None:
        self._lib.uc_ctl(self._uc, uc.uc_ctl_write(uc.UC_CTL_TB_FLUSH, 0))

    def invalidate_code(self, address: int, size: int) -> None:
        """Forget translated code for [address, address+size): it was rewritten."""
        self._lib.uc_ctl(self._uc, uc.uc_ctl_write(uc.UC_CTL_TB_REMOVE_CACHE, 2),
                         c_uint64(address), c_uint64(address + size))

    def invalidate_tlb(self) -> None:
        """Drop all cached translations (what a CR3 reload does, SDM 4.10.4.1)."""
        self._lib.uc_ctl(self._uc, uc.uc_ctl_write(uc.UC_CTL_TLB_FLUSH, 0))

    # --------------------------------------------------------------- run
    def run(self, eip: int, max_insns: int | None = None, *, timeout: float | None = None,
            resume_eip: int | None = None) -> Trap:
        """Run from ``eip`` until something stops the CPU; say what.

        ``max_insns`` counts every instruction, the kernel's iret too.
        ``resume_eip`` is the user instruction the run returns to (when ``eip``
        is the kernel's exit path): a breakpoint there does not fire again."""
        self._pending = self._hook_error = self._watch_hit = None
        budget = max_insns
        if self._stop_requested:
            if eip < _USER_LIMIT:
                self._stop_requested = False
                return Trap(TrapKind.INTERRUPTED, eip)
            budget = 1  # just the kernel's iret, then stop in user mode
        self._skip_breakpoint = resume_eip if resume_eip in self._breakpoints else None
        if self._fpu_in_buffer:
            self._put_back_fpu()
        if self.native and timeout is None:
            return self._run_native(eip, budget)
        timeout_us = 0 if timeout is None else max(1, int(timeout * 1e6))
        if self.native:
            trap = self._run_counted(eip, budget, timeout_us)
        else:
            trap = self._run_wheel(eip, budget, timeout_us)
        if trap is None:
            trap = self._why_stopped(budget, timeout is not None)
        return trap if self.native else self._checked_privilege(trap)

    def _run_native(self, eip: int, budget: int | None) -> Trap:
        """_run_counted without a timeout, spelled out: the path of every
        thread switch and system call stop. A stop in the middle (a sysenter
        to resume elsewhere, a lazy x87/SSE switch) goes the long way."""
        counter = self._counter
        before = counter[0]
        counter[1] = _NO_LIMIT if budget is None else before + budget
        iret = eip >= _USER_LIMIT  # the kernel's exit path: not a user instruction
        self._kernel_insns += iret  # taken off already, for hooks during the run
        # _emu() spelled out: one call less on every switch
        self._resume_at = None
        self._begin.value = eip
        err = self._err = self._emu_start(self._uc, self._begin, self._until, self._zero,
                                          self._zero)
        trap = None
        if self._resume_at is not None and self._pending is None and not err:
            trap = self._resume(self._resume_at, 0, 0)
            err = self._err
        if iret and counter[0] == before:
            self._kernel_insns -= 1  # stopped before the iret
        if trap is not None:
            return trap
        if self._hook_error is None and not self._restore_io_ctx:
            trap = self._pending  # a system call's stop
            if trap is not None:
                return trap
            if budget is not None and not err and not self._stop_requested \
                    and counter[0] >= counter[1]:
                # Preemption, every quantum: made as the tuple it is (a
                # NamedTuple's own constructor is a Python function).
                return _new_tuple(Trap, (_BUDGET, self._env_words[_ENV_EIP // 8],
                                         None, 0, 0, 0))
        return self._why_stopped(budget, False)

    def _run_counted(self, eip: int, budget: int | None, timeout_us: int) -> Trap | None:
        """Run with the patched library: the CPU stops itself at the limit."""
        counter = self._counter
        before = counter[0]
        counter[1] = _NO_LIMIT if budget is None else before + budget
        iret = eip >= _USER_LIMIT  # the kernel's exit path: not a user instruction
        self._kernel_insns += iret  # taken off already, for hooks during the run
        trap = self._run_resuming(eip, timeout_us, 0)
        if iret and counter[0] == before:
            self._kernel_insns -= 1  # stopped before the iret
        return trap

    def _run_wheel(self, eip: int, budget: int | None, timeout_us: int) -> Trap | None:
        """Run with the wheel's library: Unicorn's own count stops it, and
        the kernel's iret is one of the counted instructions."""
        self._wheel_budget = budget
        self._wheel_start = self._insns
        self._iret_insns = 0
        if budget and not self._count_hooked:
            # Unicorn adds its counting hook for this run but keeps the
            # blocks translated without it, which would run uncounted
            # (it flushes them only when the hook goes again).
            self._flush_code()
        self._count_hooked = bool(budget)
        return self._run_resuming(eip, timeout_us, budget or 0)

    def _run_resuming(self, eip: int, timeout_us: int, count: int) -> Trap | None:
        """emu_start, and again where the CPU must go on elsewhere (_resume)."""
        if self._emu(eip, timeout_us, count):
            return self._resume(self._resume_at, timeout_us, count)  # type: ignore[arg-type]
        return None

    def _emu(self, eip: int, timeout_us: int, count: int) -> bool:
        """One emu_start from ``eip``: True when it stopped for the CPU to go
        on elsewhere (``_resume_at``)."""
        self._resume_at = None
        self._begin.value = eip
        self._err = self._emu_start(self._uc, self._begin, self._until,
                                    c_uint64(timeout_us) if timeout_us else self._zero,
                                    c_size_t(count) if count else self._zero)
        return self._resume_at is not None and self._pending is None and not self._err

    def _resume(self, eip: int, timeout_us: int, count: int) -> Trap | None:
        """emu_start again where the CPU must go on elsewhere: at edx after
        a sysenter it could not continue in place, at the instruction that a
        lazy x87/SSE switch runs again; a stop request wins over that."""
        while True:
            if self._stop_requested:
                self._stop_requested = False
                return Trap(TrapKind.INTERRUPTED, eip)
            if count:
                if not self.counting:
                    count = self._wheel_budget or 0  # Unicorn's count starts afresh
                else:
                    count = self._wheel_budget - (self._insns - self._wheel_start)  # type: ignore[operator]
                    if count <= 0:
                        return Trap(TrapKind.BUDGET, eip)
            if not self._emu(eip, timeout_us, count):
                return None
            eip = self._resume_at  # type: ignore[assignment]

    def _why_stopped(self, budget: int | None, timed: bool) -> Trap:
        err = self._err
        if self._hook_error is not None:
            failure, self._hook_error = self._hook_error, None
            raise failure
        if self._restore_io_ctx:
            self._restore_io_ctx = False
            self._lib.uc_context_restore(self._uc, self._io_ctx)
            if self.native:  # saved in a hook, with the lazy flags apart: fold them in
                _U64.pack_into(self._env, _ENV_EFLAGS, self.read_reg("eflags"))
        if self._pending is not None:
            return self._pending
        eip = self.read_reg("eip")
        if err == uc.UC_ERR_INSN_INVALID:
            # Unicorn ends the run instead of raising #UD (vector 6) via the hook.
            self._uncount_from(eip)
            return Trap(TrapKind.EXCEPTION, eip, 6)
        if err != uc.UC_ERR_OK:
            raise CpuError(f"emulation failed at eip={eip:#x}: "
                           f"{self._lib.uc_strerror(err).decode()}")
        timed_out = c_size_t()
        if timed:
            self._lib.uc_query(self._uc, uc.UC_QUERY_TIMEOUT, byref(timed_out))
        if timed_out.value:
            self._uncount_from(eip)
            return Trap(TrapKind.TIMEOUT, eip)
        if self._stop_requested:
            self._stop_requested = False
            self._uncount_from(eip)
            return Trap(TrapKind.INTERRUPTED, eip)
        if budget is not None:
            if self.native:
                if self._counter[0] >= self._counter[1]:
                    return Trap(TrapKind.BUDGET, eip)
            else:
                if self.counting:
                    # Unicorn counted the kernel's iret too (a block of its own).
                    self._insns = self._wheel_start + budget - self._iret_insns
                return Trap(TrapKind.BUDGET, eip)
        return Trap(TrapKind.HALT, eip)

    def _checked_privilege(self, trap: Trap) -> Trap:
        """With the wheel's library: the #GP for a ring 3 that Unicorn let
        into virtual-8086 mode (see _escaped_ring3), at any stop."""
        if trap.kind is TrapKind.EXCEPTION and trap.vector == 13:
            return trap
        if self.read_reg("cs") & 3 == 3 and self.read_reg("eflags") & (_EFLAGS_VM | _EFLAGS_IOPL):
            return Trap(TrapKind.EXCEPTION, trap.eip, 13, 0, 0)
        return trap

    def close(self) -> None:
        if self._uc:
            for ctx in (self._kernel_ctx, self._kernel_ts_ctx, self._scratch_ctx, self._io_ctx):
                self._lib.uc_context_free(ctx)
            self._lib.uc_close(self._uc)
            self._uc = c_void_p()
            self._callbacks.clear()
