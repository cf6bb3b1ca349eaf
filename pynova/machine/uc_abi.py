"""The slice of Unicorn's C API (unicorn.h, x86.h of Unicorn 2.1) that pynova uses.

pynova calls libunicorn through ctypes directly instead of through the
``unicorn`` Python binding: the binding's import costs about 70 ms and each
register access through it about 2 µs, which would dominate a boot and the
system-call path. The constants below are checked against that binding by the
tests.

Two libraries can stand behind it. ``make`` builds Unicorn 2.1.4 with
pynova's patch (native/unicorn/) into the virtual environment; it is loaded
when present. Otherwise, or with ``PYNOVA_UNICORN=wheel``, the library that
the ``unicorn`` wheel ships is used (every user store takes its slow path
there, and instructions are counted by a Python hook). ``PYNOVA_UNICORN``
may also name a library file.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import NamedTuple

from pynova.machine.native import packaged_library

# unicorn.h: uc_arch, uc_mode, uc_prot, uc_hook_type, uc_query_type, uc_err.
UC_ARCH_X86 = 4
UC_MODE_32 = 4
UC_PROT_ALL = 7
UC_HOOK_INTR = 1 << 0
UC_HOOK_INSN = 1 << 1
UC_HOOK_CODE = 1 << 2
UC_HOOK_BLOCK = 1 << 3
UC_HOOK_MEM_READ = 1 << 10
UC_HOOK_MEM_WRITE = 1 << 11
UC_QUERY_TIMEOUT = 4
UC_ERR_OK = 0
UC_ERR_INSN_INVALID = 10
UC_ERR_EXCEPTION = 21

# unicorn.h: UC_CTL(type, nr, rw) = type | nr << 26 | rw << 30.
UC_CTL_IO_WRITE = 1
UC_CTL_UC_USE_EXITS = 4
UC_CTL_TB_REMOVE_CACHE = 9
UC_CTL_TB_FLUSH = 10
UC_CTL_TLB_FLUSH = 11


def uc_ctl_write(ctl_type: int, nargs: int) -> int:
    return ctl_type | (nargs << 26) | (UC_CTL_IO_WRITE << 30)


# x86.h: uc_x86_reg and uc_x86_insn.
REG = {
    "eax": 19, "ebx": 21, "ecx": 22, "edx": 24, "esi": 29, "edi": 23,
    "ebp": 20, "esp": 30, "eip": 26, "eflags": 25,
    "cs": 11, "ss": 49, "ds": 17, "es": 28, "fs": 32, "gs": 33,
    "cr0": 50, "cr2": 52, "cr3": 53, "cr4": 54,
    "dr0": 66, "dr1": 67, "dr2": 68, "dr3": 69, "dr6": 72, "dr7": 73,
    "idtr": 242, "gdtr": 243, "tr": 245, "msr": 248,
    # x87 and SSE: control, status and tag words, the physical registers
    # R0-R7 (not the stack-relative ST0-ST7), XMM0-XMM7, MXCSR.
    "fpcw": 246, "fpsw": 31, "fptag": 247, "mxcsr": 249,
    **{f"fp{i}": 82 + i for i in range(8)},
    **{f"xmm{i}": 122 + i for i in range(8)},
}
UC_X86_INS_SYSENTER = 700
UC_X86_INS_SYSCALL = 699
UC_X86_INS_IN = 218
UC_X86_INS_OUT = 500


class X86Mmr(ctypes.Structure):
    """uc_x86_mmr: a descriptor-table or task register."""

    _fields_ = [
        ("selector", ctypes.c_uint16),
        ("base", ctypes.c_uint64),
        ("limit", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
    ]


class X86Msr(ctypes.Structure):
    """uc_x86_msr: a model-specific register and its value."""

    _fields_ = [("rid", ctypes.c_uint32), ("value", ctypes.c_uint64)]


# Callback signatures (unicorn.h: uc_cb_hookintr_t, uc_cb_insn_syscall_t,
# uc_cb_hookcode_t).
HOOK_INTR = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)
HOOK_SYSCALL = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
HOOK_CODE = ctypes.CFUNCTYPE(
    None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_void_p
)
HOOK_IN = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                           ctypes.c_void_p)
HOOK_OUT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                            ctypes.c_uint32, ctypes.c_void_p)
HOOK_MEM = ctypes.CFUNCTYPE(
    ctypes.c_bool, ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64, ctypes.c_int,
    ctypes.c_int64, ctypes.c_void_p,
)


class UnicornMissing(RuntimeError):
    """The unicorn package (and so libunicorn) is not installed."""


#: Where `make` installs pynova's patched build (native/unicorn/build.py).
PATCHED_LIBRARY = os.path.join(sys.prefix, "lib", "pynova-unicorn", "libunicorn.so.2")
LIBRARY_ENV = "PYNOVA_UNICORN"
#: Exported by the patched build only: where its instruction counter and the
#: CPU state are (native/unicorn/pynova.patch).
PATCH_SYMBOL = "uc_pynova_counter"


class Library(NamedTuple):
    """A loaded libunicorn: the ctypes handle, its file, whether it is pynova's build."""

    lib: ctypes.CDLL
    path: str
    patched: bool


def wheel_library_path() -> str:
    """Where the unicorn wheel keeps libunicorn."""
    path = packaged_library("unicorn", ("libunicorn.so.2", "libunicorn.so",
                                        "libunicorn.2.dylib", "libunicorn.dylib",
                                        "unicorn.dll"))
    if path is None:
        raise UnicornMissing("libunicorn not found: install the 'unicorn' package "
                             "(pip install 'unicorn>=2.1,<2.2')")
    return path


def library_path() -> str:
    """The library to load: $PYNOVA_UNICORN ("wheel" or a file), else the
    patched build when `make` made it, else the wheel's."""
    choice = os.environ.get(LIBRARY_ENV, "")
    if choice == "wheel":
        return wheel_library_path()
    if choice:
        if not os.path.exists(choice):
            raise UnicornMissing(f"{LIBRARY_ENV}={choice}: no such library file")
        return choice
    if os.path.exists(PATCHED_LIBRARY):
        return PATCHED_LIBRARY
    return wheel_library_path()


def load_library() -> Library:
    path = library_path()
    lib = ctypes.CDLL(path)
    vp, u64, sz = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t
    lib.uc_open.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(vp)]
    lib.uc_close.argtypes = [vp]
    lib.uc_mem_map_ptr.argtypes = [vp, u64, sz, ctypes.c_uint32, vp]
    lib.uc_emu_start.argtypes = [vp, u64, u64, u64, sz]
    lib.uc_emu_stop.argtypes = [vp]
    lib.uc_hook_del.argtypes = [vp, sz]
    lib.uc_context_alloc.argtypes = [vp, ctypes.POINTER(vp)]
    lib.uc_context_save.argtypes = [vp, vp]
    lib.uc_context_restore.argtypes = [vp, vp]
    lib.uc_context_size.argtypes = [vp]
    lib.uc_context_size.restype = sz
    lib.uc_context_free.argtypes = [vp]
    lib.uc_query.argtypes = [vp, ctypes.c_int, ctypes.POINTER(sz)]
    lib.uc_strerror.argtypes = [ctypes.c_int]
    lib.uc_strerror.restype = ctypes.c_char_p
    lib.uc_version.argtypes = [ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint)]
    lib.uc_version.restype = ctypes.c_uint
    # uc_reg_read/write(_batch) and uc_hook_add/uc_ctl are variadic or hot:
    # they are called without argtypes, with ctypes objects as arguments.
    patched = hasattr(lib, PATCH_SYMBOL)
    if patched:
        lib.uc_pynova_counter.argtypes = [vp]
        lib.uc_pynova_counter.restype = vp
        lib.uc_pynova_cpu_state.argtypes = [vp]
        lib.uc_pynova_cpu_state.restype = vp
    return Library(lib, path, patched)


def version_string(library: Library) -> str:
    """"2.1.4 patched" or "2.1.4 wheel": the banner's and --version's name."""
    major, minor = ctypes.c_uint(), ctypes.c_uint()
    patch = (library.lib.uc_version(ctypes.byref(major), ctypes.byref(minor)) >> 8) & 0xFF
    kind = "patched" if library.patched else "wheel"
    return f"{major.value}.{minor.value}.{patch} {kind}"
