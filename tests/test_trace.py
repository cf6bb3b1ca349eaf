"""pynova run --trace: strace-like lines on stderr."""

from __future__ import annotations

import io
import re

import pytest

from pynova.tools.trace import Tracer, parse_events

from conftest import address_of_bytes, pynova_cli, run_example, symbol


def trace(name: str, events: str, **kwargs) -> str:
    stream = io.StringIO()

    def setup(kernel):
        Tracer(kernel, parse_events(events), stream).attach()

    run_example(name, setup=setup, **kwargs)
    return stream.getvalue()


def test_hello_print_call_with_its_real_arguments(example):
    text = trace("hello", "syscall")
    # print("Hello world!\n", 13): the string sits in hello's data segment
    m = re.search(r"^\[\s*(\d+)\] sys_print\((0x[0-9a-f]+), 13\) = 0x1$", text, re.M)
    assert m, text
    assert 0 < int(m.group(1)) < 100
    assert int(m.group(2), 16) == address_of_bytes(example("hello"), b"Hello world!\n")


def test_exit_and_sum_and_exception_events():
    text = trace("exit42", "syscall")
    assert re.search(r"\] sys_exit\(0x2a\) = \?$", text, re.M)
    text = trace("pagefault", "exception")
    assert re.search(r"\] --- #PF Page Fault ec 0 eip=0x[0-9a-f]+ cr2=0x234 error_code=0x6 ---",
                     text)


def test_map_events_at_load():
    text = trace("hello", "map")
    assert "map   0x00002000-0x00003000 -> 0x00107000 [P RW US - -]" in text  # data
    assert "map   0x00003000-0x00004000 -> 0x00108000 [P -- US - -]" in text  # text
    assert re.search(r"map   0x00001000-0x00002000 -> 0x[0-9a-f]+ \[P RW US - -\]", text)


def test_sched_events(example):
    text = trace("hello", "sched")
    assert f"sched: run ec 0 at eip {symbol(example('hello'), '_start'):#x}" in text


def test_unknown_event_is_rejected():
    with pytest.raises(ValueError):
        parse_events("syscall,bogus")
    assert parse_events("all") == {"syscall", "exception", "map", "sched"}


def test_cli_trace_goes_to_stderr():
    result = pynova_cli("run", "--trace=syscall,exception,map,sched", "example:hello")
    assert "Hello world!" in result.stdout and "sys_print" not in result.stdout
    assert re.search(r"sys_print\(0x[0-9a-f]+, 13\) = 0x1", result.stderr)
    assert "+++ fault: Invalid Opcode (status 132) +++" in result.stderr
    assert pynova_cli("run", "--trace=nope", "example:hello").returncode == 2


def test_tracing_off_leaves_the_syscall_handler_alone():
    seen = []
    run_example("hello", setup=lambda kernel: seen.append(
        kernel.cpu.syscall_handler is kernel.syscalls.dispatch and kernel.tracer is None))
    assert seen == [True]
