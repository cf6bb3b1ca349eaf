"""Issue 2: booting, running bundled programs, exceptions taken by the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import disassembly, pynova_cli, run_example, symbol


def _reference_dir() -> Path | None:
    """../shared/reference beside the repository (CI puts a copy there)."""
    for base in (Path(__file__).resolve().parents[2], Path("/work")):
        folder = base / "shared" / "reference"
        if folder.is_dir():
            return folder
    return None


REFERENCE = _reference_dir() or Path("missing-reference")
needs_reference = pytest.mark.skipif(_reference_dir() is None,
                                     reason="../shared/reference is not beside the repository")


def lines(output: str) -> list[str]:
    return output.splitlines()


def report(output: str) -> list[str]:
    """The four report lines of the exception that ended the task (the
    explanation, if any, follows them)."""
    out = lines(output)
    first = next(i for i, line in enumerate(out) if line.startswith("Ec::handle_exc "))
    return out[first:first + 4]


def ud2_after_main(path: Path) -> int:
    start = symbol(path, "_start")
    return next(addr for addr, text in disassembly(path) if addr > start and text == "ud2")


def test_hello_prints_banner_module_hello_and_ud2_report(example):
    result = run_example("hello")
    out = lines(result.output)
    assert out[0].startswith("pynova 0.1.0 (NOVA-style microkernel in Python)")
    assert out[1] == ""
    size = example("hello").stat().st_size
    assert out[2] == f"load module from 107000 - {0x107000 + size:x} ({size} bytes) : hello"
    assert "Hello world!" in out
    ud2 = ud2_after_main(example("hello"))
    rep = report(result.output)
    assert rep[0] == f"Ec::handle_exc Invalid Opcode (eip={ud2:#x} cr2=0x0)"
    assert rep[1].startswith("eax=") and rep[2].startswith("esi=")
    assert rep[3] == f"User EXC 0x6 (EIP={ud2:#x} CR2=0x0)"
    assert (result.status, result.reason) == (132, "fault")
    assert result.fault.vector == 6 and result.fault.eip == ud2


@needs_reference
def test_hello_matches_reference_substance():
    reference = (REFERENCE / "hello.serial").read_bytes().decode().replace("\r\n", "\n")
    ours = run_example("hello").output
    assert "Hello world!\n" in reference and "Hello world!\n" in ours
    assert reference.splitlines()[-1].startswith("User EXC 0x6 (EIP=0x")
    assert report(ours)[3].startswith("User EXC 0x6 (EIP=0x")


def test_exit_status_comes_from_exit_call():
    result = run_example("exit42")
    assert result.output.endswith("bye\n")
    assert (result.status, result.reason, result.fault) == (42, "exit", None)


def test_pagefault_reports_cr2_and_the_store_instruction(example):
    path = example("pagefault")
    result = run_example("pagefault")
    main = symbol(path, "main")
    store = next(addr for addr, text in disassembly(path)
                 if addr >= main and "0x234" in text)
    assert report(result.output)[0] == f"Ec::handle_exc Page Fault (eip={store:#x} cr2=0x234)"
    assert result.fault.cr2 == 0x234 and result.fault.eip == store
    # Not present (P=0), write (W=1), user mode (U=1): SDM vol. 3A, Figure 4-12.
    assert result.fault.error_code == 0b110
    assert result.status == 139


@needs_reference
def test_pagefault_report_ends_with_the_reference_line():
    reference = (REFERENCE / "pagefault.serial").read_bytes().decode().splitlines()[-1]
    assert report(run_example("pagefault").output)[3] == reference.strip()


@needs_reference
def test_sysmisc_edge_cases_like_the_reference():
    out = lines(run_example("sysmisc").output)
    dump = next(line for line in out if "SYS_DUMP" in line)
    assert dump.startswith("EC:0xc") and dump.endswith("SYS_DUMP : 0x11223344, 0xaabbccdd")
    assert "syscall 7 - unknown" in out
    assert "sum ok" in out
    reference = (REFERENCE / "sysmisc.serial").read_bytes().decode().splitlines()
    assert "syscall 7 - unknown\r" in reference or "syscall 7 - unknown" in reference


def test_bss_starts_zero_and_is_writable():
    assert "bss ok\n" in run_example("bss").output


def test_bad_print_pointers_are_reported_and_the_program_goes_on():
    result = run_example("badprint")
    out = lines(result.output)
    assert any(line.startswith("print: bad buffer 0xc0001000+0x4") for line in out)
    assert any(line.startswith("print: bad buffer 0x30000000+0x4") for line in out)
    assert "print(kernel) = -1" in out and "print(unmapped) = -1" in out
    assert result.status == 3


@pytest.mark.parametrize("name, vector, error_code, cr2_symbol", [
    ("textwrite", 14, 0b111, "target"),        # present, write, user
    ("kernelread", 14, 0b101, None),           # present (supervisor page), read, user
    ("unmapped_read", 14, 0b100, None),        # not present, read, user
    ("cli", 13, 0, None),
    ("hlt", 13, 0, None),
    ("outb", 13, 0, None),
])
def test_cpu_enforces_protection(example, name, vector, error_code, cr2_symbol):
    path = example(name)
    result = run_example(name)
    fault = result.fault
    assert fault is not None and fault.vector == vector
    assert fault.error_code == error_code
    if cr2_symbol:
        assert fault.cr2 == symbol(path, cr2_symbol)
    if name in ("cli", "hlt", "outb"):
        assert fault.eip == symbol(path, "fault_insn")
        assert "General Protection" in result.output
    assert result.status == 139


def test_kernel_memory_read_faults_at_0xc0000000():
    fault = run_example("kernelread").fault
    assert fault.cr2 == 0xC0000000


def test_jump_to_unmapped_address_is_an_instruction_fetch_fault():
    fault = run_example("jump_unmapped").fault
    assert (fault.vector, fault.eip, fault.cr2) == (14, 0x50000000, 0x50000000)
    assert fault.error_code & 1 == 0  # not present


def test_divide_by_zero_raises_divide_error_at_the_div(example):
    path = example("divzero")
    result = run_example("divzero")
    div = next(addr for addr, text in disassembly(path) if text.startswith(("div", "idiv")))
    assert (result.fault.vector, result.fault.eip) == (0, div)
    assert "Ec::handle_exc Divide Error (eip=" in result.output
    assert result.status == 136


def test_int3_is_a_breakpoint_trap_reported_after_the_instruction(example):
    path = example("int3")
    result = run_example("int3")
    assert result.fault.vector == 3
    assert result.fault.eip == symbol(path, "fault_insn") + 1  # traps report the next eip
    assert result.status == 133


def test_instruction_limit_stops_a_runaway_program():
    result = run_example("spin", max_insns=5000)
    assert result.status == 124
    assert result.output.splitlines()[-1] == "limit: 5000 instructions executed (--max-insns)"
    assert result.instructions == 5000


def test_timeout_stops_a_runaway_program():
    result = run_example("spin", timeout=0.05)
    assert result.status == 124
    assert result.output.splitlines()[-1] == "limit: time is up (--timeout)"


def test_cli_run_exit_status_and_output():
    proc = pynova_cli("run", "exit42")
    assert proc.returncode == 42
    assert proc.stdout.endswith("bye\n")
    assert proc.stderr == ""


def test_cli_unknown_program_is_one_line_status_127():
    proc = pynova_cli("run", "no-such-program")
    assert proc.returncode == 127
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "no-such-program" in proc.stderr
    assert "hello" in proc.stderr  # names the examples


def test_cli_rejects_bad_mem_without_traceback():
    proc = pynova_cli("run", "--mem", "1M", "hello")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "--mem" in proc.stderr


def test_cli_examples_lists_bundled_programs():
    proc = pynova_cli("examples")
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert {"hello", "pagefault", "sysmisc", "spin", "sysloop"} <= set(names)


def test_cli_max_insns_status_124():
    proc = pynova_cli("run", "--max-insns", "1000", "spin")
    assert proc.returncode == 124
    assert proc.stdout.splitlines()[-1] == "limit: 1000 instructions executed (--max-insns)"


def test_many_machines_in_one_process_are_independent():
    from pynova.machine import Console, Machine
    from pynova.runner import boot
    from pynova.toolchain import example_path

    machines = [Machine(8 << 20, Console()) for _ in range(2)]
    try:
        kernels = [boot(m, [(example_path(n).read_bytes(), n)])
                   for m, n in zip(machines, ["hello", "exit42"], strict=False)]
        outcomes = [k.run() for k in reversed(kernels)]
        assert [o.status for o in outcomes] == [42, 132]
        assert "Hello world!" in machines[0].console.output
        assert "Hello world!" not in machines[1].console.output
    finally:
        for m in machines:
            m.close()
