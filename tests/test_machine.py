"""The machine layer: Unicorn/Capstone ABI constants, RAM, Multiboot info."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

from pynova.machine import Console, Machine
from pynova.machine import uc_abi as uc
from pynova.machine.decode import CS_ARCH_X86, CS_MODE_32, Decoder
from pynova.machine.memory import PhysicalMemory, PhysicalMemoryError
from pynova.machine.multiboot import BootInfo, load_multiboot


def test_unicorn_constants_match_the_binding():
    from unicorn import unicorn_const as c
    from unicorn import x86_const as x

    for name, value in uc.REG.items():
        assert getattr(x, f"UC_X86_REG_{name.upper()}") == value, name
    assert (x.UC_X86_INS_SYSENTER, x.UC_X86_INS_SYSCALL) == (uc.UC_X86_INS_SYSENTER,
                                                            uc.UC_X86_INS_SYSCALL)
    assert (x.UC_X86_INS_IN, x.UC_X86_INS_OUT) == (uc.UC_X86_INS_IN, uc.UC_X86_INS_OUT)
    for name in ("UC_ARCH_X86", "UC_MODE_32", "UC_PROT_ALL", "UC_HOOK_INTR", "UC_HOOK_INSN",
                 "UC_HOOK_CODE", "UC_HOOK_BLOCK", "UC_QUERY_TIMEOUT", "UC_ERR_INSN_INVALID",
                 "UC_CTL_TB_FLUSH", "UC_CTL_TLB_FLUSH", "UC_CTL_TB_REMOVE_CACHE",
                 "UC_CTL_UC_USE_EXITS"):
        assert getattr(c, name) == getattr(uc, name), name


def test_capstone_constants_match_the_binding():
    import capstone

    assert (capstone.CS_ARCH_X86, capstone.CS_MODE_32) == (CS_ARCH_X86, CS_MODE_32)


def test_decoder_splits_instructions():
    code = bytes.fromhex("c70534020000120000000f0b")
    d = Decoder()
    assert d.disassemble(code, 0x200c) == [(0x200c, 10, "mov", "dword ptr [0x234], 0x12"),
                                           (0x2016, 2, "ud2", "")]
    assert d.count(code, 0x200c) == 2 and d.count(code, 0x200c, upto=0x2016) == 1


def test_physical_memory_bounds():
    mem = PhysicalMemory(1 << 20)
    mem.w32(0xFFFFC, 0xDEADBEEF)
    assert mem.read(0xFFFFC, 4) == struct.pack("<I", 0xDEADBEEF)
    with pytest.raises(PhysicalMemoryError):
        mem.read(0xFFFFE, 4)
    mem.close()


def test_multiboot_information_is_real_bytes():
    mem = PhysicalMemory(4 << 20)
    addr = load_multiboot(mem, [(b"\x7fELF-module", "user/hello")], 0x9000, 0x107000)
    flags, lower, upper, _dev, cmdline, count, mods = struct.unpack_from("<7I", mem.read(addr, 28))
    assert flags & (1 << 3) and flags & 1
    assert (lower, upper) == (640, (4 << 20) // 1024 - 1024)
    assert count == 1
    start, end, string, _ = struct.unpack("<4I", mem.read(mods, 16))
    assert (start, end) == (0x107000, 0x107000 + 11)
    assert start % 4096 == 0
    assert mem.read(string, 11) == b"user/hello\0"
    assert mem.read(start, 11) == b"\x7fELF-module"
    info = BootInfo.unpack(mem, addr)
    assert info.modules[0].cmdline == "user/hello" and info.mem_size == 4 << 20
    assert mem.read(cmdline, 7) == b"pynova\0"
    mem.close()


def test_console_keeps_what_the_kernel_printed():
    console = Console()
    console.line("a")
    console.write_bytes(b"b\xff")
    assert console.output == "a\nb\xff"


def test_cpu_descriptor_tables_after_boot():
    from pynova.kernel.layout import GDT_PHYS, IDT_PHYS, kvirt
    from pynova.runner import boot
    from pynova.toolchain import example_path

    with Machine(8 << 20, Console()) as machine:
        kernel = boot(machine, [(example_path("hello").read_bytes(), "hello")])
        cpu = kernel.cpu
        assert cpu.read_table_register("gdtr") == (kvirt(GDT_PHYS), 6 * 8 - 1)
        assert cpu.read_table_register("idtr") == (kvirt(IDT_PHYS), 256 * 8 - 1)
        assert cpu.read_msr(0x174) == 0x08
        assert cpu.read_cr(0) & 0x80000001 == 0x80000001  # PG and PE
        # The user code descriptor (selector 0x1b, index 3) has DPL 3.
        access = machine.memory.read(GDT_PHYS + 3 * 8 + 5, 1)[0]
        assert access == 0xFA
        kernel.run()
        regs = cpu.read_regs()
        assert (regs.cs, regs.ss) == (0x1B, 0x23)  # the task ran in ring 3


def test_breakpoint_fires_once_and_resuming_there_goes_on():
    from pynova.machine.cpu import TrapKind
    from pynova.runner import boot
    from pynova.toolchain import example_path

    from conftest import symbol

    path = example_path("exit42")
    with Machine(8 << 20, Console()) as machine:
        kernel = boot(machine, [(path.read_bytes(), "exit42")])
        main = symbol(path, "main")
        machine.cpu.add_breakpoint(main)
        trap = kernel.run_slice()
        assert (trap.kind, trap.eip, kernel.current.regs.eip) == (TrapKind.BREAKPOINT, main, main)
        assert kernel.run_slice() is None  # resumed past main, ran to exit
        assert kernel.outcome.status == 42


def test_a_stop_requested_between_runs_stops_the_next_run_in_user_mode():
    from pynova.machine.cpu import TrapKind
    from pynova.runner import boot
    from pynova.toolchain import example_path

    with Machine(8 << 20, Console()) as machine:
        kernel = boot(machine, [(example_path("spin").read_bytes(), "spin")])
        entry = kernel.current.regs.eip
        machine.cpu.request_stop()
        trap = kernel.run_slice()
        assert (trap.kind, trap.eip) == (TrapKind.INTERRUPTED, entry)
        assert kernel.current.regs.eip == entry and kernel.current.regs.cs == 0x1B
        assert kernel.run_slice(single_step=True).kind is TrapKind.BUDGET
        assert kernel.current.regs.eip != entry  # one instruction later


def test_an_exception_in_a_kernel_hook_is_raised_not_swallowed():
    from pynova.runner import boot
    from pynova.toolchain import example_path

    with Machine(8 << 20, Console()) as machine:
        kernel = boot(machine, [(example_path("sysloop").read_bytes(), "sysloop")])

        def broken(esi: int, edi: int, ecx: int, edx: int) -> int:
            raise ZeroDivisionError("kernel bug in sum")

        kernel.syscalls.table[2] = broken
        with pytest.raises(ZeroDivisionError, match="kernel bug in sum"):
            kernel.run()


def test_the_patched_library_is_used_when_built_and_the_wheel_when_asked(monkeypatch):
    from pynova.machine.uc_abi import LIBRARY_ENV, PATCHED_LIBRARY

    from conftest import pynova_cli

    monkeypatch.delenv(LIBRARY_ENV, raising=False)
    built = Path(PATCHED_LIBRARY).exists()
    version = pynova_cli("--version").stdout
    assert version.startswith("pynova 0.1.0 (Unicorn 2.1.4 ")
    assert ("patched: " + PATCHED_LIBRARY if built else "wheel: ") in version
    monkeypatch.setenv(LIBRARY_ENV, "wheel")
    assert "2.1.4 wheel: " in pynova_cli("--version").stdout
    first = pynova_cli("run", "example:hello").stdout.splitlines()[0]
    assert first.endswith("[Python 3.11.7, Unicorn 2.1.4 wheel]".replace(
        "3.11.7", sys.version.split()[0]))
    monkeypatch.setenv(LIBRARY_ENV, "/nonexistent/libunicorn.so.2")
    bad = pynova_cli("run", "example:hello")
    assert bad.returncode == 70 and bad.stderr.count("\n") == 1
    assert "PYNOVA_UNICORN=/nonexistent/libunicorn.so.2: no such library file" in bad.stderr


def test_fpu_state_round_trips_and_starts_in_fninit_state(unicorn_library):
    from pynova.machine.unicorn_cpu import FPU_INIT_STATE

    with Machine(4 << 20, Console()) as machine:
        cpu = machine.cpu
        cpu.write_reg("fpcw", 0)
        cpu.switch_fpu(None)
        assert (cpu.read_reg("fpcw"), cpu.read_reg("fpsw"), cpu.read_reg("fptag"),
                cpu.read_reg("mxcsr")) == (0x37F, 0, 0xFFFF, 0x1F80)
        cpu.write_reg("fpcw", 0xB7F)
        saved = cpu.switch_fpu(None)
        if unicorn_library == "wheel":  # the patched one keeps the CPU state's bytes
            assert cpu.switch_fpu(saved) == FPU_INIT_STATE
        else:
            cpu.switch_fpu(saved)
        assert cpu.read_reg("fpcw") == 0xB7F and cpu.switch_fpu(saved) == saved
