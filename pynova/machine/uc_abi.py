"""The slice of Unicorn's C API (unicorn.h, x86.h of Unicorn 2.1) that pynova uses.

pynova calls libunicorn through ctypes directly instead of through the
``unicorn`` Python binding: the binding's import costs about 70 ms and each
register access through it about 2 µs, which would dominate a boot and the
system-call path. The library file is the one the ``unicorn`` wheel from PyPI
ships; the constants below are checked against that binding by the tests.
"""

from __future__ import annotations

import ctypes

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
}
UC_X86_INS_SYSENTER = 700
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


def library_path() -> str:
    """Where the unicorn wheel keeps libunicorn."""
    path = packaged_library("unicorn", ("libunicorn.so.2", "libunicorn.so",
                                        "libunicorn.2.dylib", "libunicorn.dylib",
                                        "unicorn.dll"))
    if path is None:
        raise UnicornMissing("libunicorn not found: install the 'unicorn' package "
                             "(pip install 'unicorn>=2.1,<2.2')")
    return path


def load_library() -> ctypes.CDLL:
    lib = ctypes.CDLL(library_path())
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
    return lib


def version_string(lib: ctypes.CDLL) -> str:
    major, minor = ctypes.c_uint(), ctypes.c_uint()
    lib.uc_version(ctypes.byref(major), ctypes.byref(minor))
    return f"{major.value}.{minor.value}"
