"""Issue 2: booting, running bundled programs, exceptions taken by the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pynova.toolchain import example_path

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
def test_hello_ud2_is_where_the_reference_kernel_reports_it():
    # The seed's layout (text from 0x3000, _start first) puts start.S's ud2
    # exactly where the reference kernel saw it.
    reference = (REFERENCE / "hello.serial").read_bytes().decode().splitlines()[-1]
    assert reference.strip() == "User EXC 0x6 (EIP=0x300a CR2=0x0)"
    assert report(run_example("hello").output)[3] == reference.strip()


@needs_reference
def test_pagefault_report_has_the_reference_form(example):
    # The reference's pagefault was linked with the course's older script
    # (text at 0x2000); ours follows the seed's map, so only the EIP moves.
    reference = (REFERENCE / "pagefault.serial").read_bytes().decode().splitlines()[-1]
    store = symbol(example("pagefault"), "main")
    assert reference.strip() == "User PF (EIP=0x200c CR2=0x234)"
    assert store & 0xFFF == 0x00c and store >> 12 == 3
    assert report(run_example("pagefault").output)[3] == f"User PF (EIP={store:#x} CR2=0x234)"


def test_pagefault_register_lines_match_the_seed_slide():
    # The slide: "Page Fault (eip=0x3000 cr2=0x234) ... esp==0x1ffc": the
    # stack page below 0x2000 holds only main's return address.
    rep = report(run_example("pagefault").output)
    assert rep[2].endswith("esp=0x1ffc")


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
    assert "bss ok: 65536 bytes\n" in run_example("bss").output


def test_cli_build_and_run_of_a_64_kib_bss_keeps_every_element(tmp_path):
    # With the stack in a page of its own below the data, a .bss of any size
    # is safe from it (the old map let the stack grow into .bss).
    from pynova.toolchain import examples_dir

    program = tmp_path / "bss"
    build = pynova_cli("build", str(examples_dir() / "bss.c"), "-o", str(program))
    assert (build.returncode, build.stdout, build.stderr) == (0, f"{program}\n", "")
    assert symbol(program, "big") >= 0x2000 and symbol(program, "stack_top") == 0x2000
    run = pynova_cli("run", "--quiet", str(program))
    assert (run.returncode, run.stdout) == (132, "stirred 56\nbss ok: 65536 bytes\n")


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
    proc = pynova_cli("run", "example:exit42")
    assert proc.returncode == 42
    assert proc.stdout.endswith("bye\n")
    assert proc.stderr == ""


def test_cli_bare_name_runs_a_bundled_example_only_with_a_note(tmp_path):
    # No file of that name here: the example runs, and stderr says so.
    proc = pynova_cli("run", "exit42", cwd=tmp_path)
    assert (proc.returncode, proc.stdout.splitlines()[-1]) == (42, "bye")
    assert proc.stderr == ("pynova: note: there is no file 'exit42'; running the bundled "
                           "example example:exit42\n")
    # A file of that name (a student's own program) always wins.
    (tmp_path / "exit42").write_bytes(example_path("hello").read_bytes())
    proc = pynova_cli("run", "exit42", cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (132, "")
    assert "Hello world!" in proc.stdout
    # example:NAME never looks at files.
    assert pynova_cli("run", "example:exit42", cwd=tmp_path).returncode == 42
    # A name that looks like a file never falls back to an example.
    proc = pynova_cli("run", "exit42.elf", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (127, "")
    assert proc.stderr == "pynova: exit42.elf: no such file\n"


def test_cli_unknown_example_name_is_one_line_status_127():
    proc = pynova_cli("run", "example:nope")
    assert (proc.returncode, proc.stdout) == (127, "")
    assert proc.stderr.startswith("pynova: example:nope: no such bundled example (examples: ")
    assert proc.stderr.count("\n") == 1


def test_cli_quiet_prints_only_the_programs_output():
    proc = pynova_cli("run", "--quiet", "example:hello")
    assert (proc.returncode, proc.stdout, proc.stderr) == (132, "Hello world!\n", "")
    proc = pynova_cli("run", "-q", "example:pagefault")  # a fault: the status tells
    assert (proc.returncode, proc.stdout, proc.stderr) == (139, "", "")


def test_cli_keeps_the_programs_status_when_stdout_goes_away():
    # `pynova run hello | head -1`: the reader leaves after one line.
    shell = (f"'{sys.executable}' -m pynova run example:threads | head -1; "
             "echo \"status ${PIPESTATUS[0]}\"")
    proc = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=60)
    assert proc.stdout.splitlines() == [proc.stdout.splitlines()[0], "status 0"]
    shell = shell.replace("example:threads", "example:hello")
    proc = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=60)
    assert proc.stdout.splitlines()[1] == "status 132"
    assert proc.stderr == ""  # a closed pipe is no error


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
@pytest.mark.parametrize("args, status", [
    (["run", "example:hello"], 132),          # run: the program's status
    (["run", "--quiet", "example:exit42"], 42),
    (["examples"], 74),                       # the command's output itself: EX_IOERR
    (["readelf", "example:hello"], 74),
])
def test_cli_output_to_a_full_disk_is_one_line(args, status):
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "pynova", *args], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == status
    assert proc.stderr == "pynova: cannot write the output: No space left on device\n"


def test_cli_unknown_program_is_one_line_status_127():
    proc = pynova_cli("run", "no-such-program")
    assert proc.returncode == 127
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "no-such-program" in proc.stderr
    assert "hello" in proc.stderr  # names the examples


def test_cli_rejects_bad_mem_without_traceback():
    proc = pynova_cli("run", "--mem", "1M", "example:hello")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "--mem" in proc.stderr


def test_cli_examples_lists_bundled_programs():
    proc = pynova_cli("examples")
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert {"hello", "pagefault", "sysmisc", "spin", "sysloop"} <= set(names)


def test_cli_max_insns_status_124():
    proc = pynova_cli("run", "--max-insns", "1000", "example:spin")
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


def test_cli_run_in_process_with_a_text_only_stdout(monkeypatch):
    # An embedding that swaps sys.stdout for a text stream (no .buffer)
    # still gets the program's output.
    import io

    from pynova.cli import main

    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["run", "--quiet", "example:hello"]) == 132
    assert out.getvalue() == "Hello world!\n"


def test_a_file_name_outside_latin_1_is_printed_as_its_bytes(tmp_path):
    program = tmp_path / "héllo-日本"
    program.write_bytes(example_path("exit42").read_bytes())
    proc = subprocess.run([sys.executable, "-m", "pynova", "run", str(program)],
                          capture_output=True, timeout=60)
    assert proc.returncode == 42 and proc.stderr == b""
    assert proc.stdout.splitlines()[2].endswith(b" : " + os.fsencode(program))
    import pynova

    assert pynova.run(program).status == 42
