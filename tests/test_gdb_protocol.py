"""Unit tests of the GDB remote protocol layer, with a fake target."""

from __future__ import annotations

import queue
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pynova.tools.gdbstub import regs
from pynova.tools.gdbstub.link import Link
from pynova.tools.gdbstub.packet import (
    Ack,
    BadPacket,
    Interrupt,
    Nack,
    Packet,
    PacketError,
    PacketReader,
    checksum,
    escape,
    frame,
    rle_decode,
    rle_encode,
    unescape,
)
from pynova.tools.gdbstub.protocol import GdbSession, Reply
from pynova.tools.gdbstub.server import GdbServer
from pynova.tools.gdbstub.siginfo import SEGV_MAPERR, siginfo
from pynova.tools.gdbstub.stop import Signal, StopReason, WatchKind, format_stop
from pynova.tools.gdbstub.target import BreakKind, MemoryFault, TargetError
from pynova.tools.gdbstub.vcont import Resume, parse_vcont

# -- the fake target ----------------------------------------------------------

PAGE = 0x1000
MAPPED = range(0x1000, 0x3000)


@dataclass
class FakeTarget:
    """Two threads, two pages of memory at 0x1000, a scripted stop queue."""

    thread_ids: list[int] = field(default_factory=lambda: [1, 2])
    memory: bytearray = field(default_factory=lambda: bytearray(range(256)) * 32)
    registers: dict[int, dict[str, int]] = field(default_factory=dict)
    breakpoints: set[tuple[BreakKind, int, int]] = field(default_factory=set)
    stops: list[StopReason] = field(default_factory=list)
    resumes: list[tuple[bool, int | None, int]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    deadline: float | None = None  # monotonic: the program's time limit

    def threads(self) -> list[int]:
        return list(self.thread_ids)

    def read_registers(self, thread: int) -> dict[str, int]:
        base = {name: thread * 0x100 + i for i, name in enumerate(regs.REGISTER_NAMES)}
        return base | self.registers.get(thread, {})

    def write_registers(self, thread: int, values: dict[str, int]) -> None:
        self.registers.setdefault(thread, {}).update(values)

    def read_memory(self, address: int, length: int) -> bytes:
        if address not in MAPPED:
            raise MemoryFault(f"{address:#x}")
        end = min(address + length, MAPPED.stop)
        return bytes(self.memory[address - MAPPED.start : end - MAPPED.start])

    def write_memory(self, address: int, data: bytes) -> None:
        if address not in MAPPED or address + len(data) > MAPPED.stop:
            raise MemoryFault(f"{address:#x}")
        offset = address - MAPPED.start
        self.memory[offset : offset + len(data)] = data

    def insert_breakpoint(self, kind: BreakKind, address: int, length: int) -> bool:
        if kind is BreakKind.HARDWARE:
            return False
        if address not in MAPPED:
            raise MemoryFault(f"{address:#x}")
        self.breakpoints.add((kind, address, length))
        return True

    def remove_breakpoint(self, kind: BreakKind, address: int, length: int) -> bool:
        if kind is BreakKind.HARDWARE:
            return False
        self.breakpoints.discard((kind, address, length))
        return True

    def resume(self, step: bool, thread: int | None, signal: int = 0) -> StopReason:
        self.resumes.append((step, thread, signal))
        return self.stops.pop(0)

    def interrupt(self) -> None:
        self.events.append("interrupt")

    def kill(self) -> None:
        self.events.append("kill")

    def detach(self) -> None:
        self.events.append("detach")

    def time_left(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def time_up(self) -> None:
        self.events.append("time up")


def make_session(**kwargs: object) -> tuple[GdbSession, FakeTarget]:
    target = FakeTarget(**kwargs)  # type: ignore[arg-type]
    return GdbSession(target, StopReason.signal(Signal.SIGTRAP, 1)), target


def ask(session: GdbSession, packet: bytes | str) -> bytes | None:
    data = packet.encode("latin-1") if isinstance(packet, str) else packet
    return session.handle(data).data


# -- packet framing -----------------------------------------------------------


def test_checksum_of_known_packets() -> None:
    assert checksum(b"OK") == 0x9A
    assert frame(b"OK") == b"$OK#9a"
    assert frame(b"") == b"$#00"
    assert frame(b"qSupported") == b"$qSupported#37"


def test_escape_round_trip_of_every_byte() -> None:
    data = bytes(range(256)) * 2
    escaped = escape(data)
    assert not set(escaped) & set(b"$#*") - {0x7D}
    assert b"$" not in escaped and b"#" not in escaped and b"*" not in escaped
    assert unescape(escaped) == data


def test_escape_specials() -> None:
    assert escape(b"$#}*a") == b"}\x04}\x03}]}\x0aa"


def test_unescape_trailing_escape_is_an_error() -> None:
    with pytest.raises(PacketError):
        unescape(b"ab}")


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        (b"0* ", b"0000"),
        (b"a*!b", b"aaaaab"),
        (b"x*~", b"x" * 98),
        (b'}]*"', b"}]]]]]]"),
    ],
)
def test_rle_decode(encoded: bytes, decoded: bytes) -> None:
    assert rle_decode(encoded) == decoded


@pytest.mark.parametrize("bad", [b"*a", b"a*", b"a*\x01"])
def test_rle_decode_malformed(bad: bytes) -> None:
    with pytest.raises(PacketError):
        rle_decode(bad)


@pytest.mark.parametrize("length", [*range(1, 20), 97, 98, 99, 200, 1000])
def test_rle_encode_round_trip_and_legal_counts(length: int) -> None:
    data = b"ab" + b"0" * length + b"c"
    encoded = rle_encode(data)
    assert rle_decode(encoded) == data
    counts = [encoded[i + 1] for i, byte in enumerate(encoded) if byte == ord("*")]
    assert all(32 <= c <= 126 and c not in b"#$" for c in counts)
    assert len(encoded) <= len(data)


def test_rle_encode_runs_of_seven_and_eight_avoid_hash_and_dollar() -> None:
    assert rle_encode(b"0" * 7) == b'0*"0'
    assert rle_encode(b"0" * 8) == b'0*"00'
    assert rle_encode(b"0" * 4) == b"0* "
    assert rle_encode(b"000") == b"000"


def test_rle_encode_leaves_escape_pairs_alone() -> None:
    data = escape(b"}" * 5) + b"]" * 5
    assert rle_decode(rle_encode(data)) == data
    assert unescape(rle_decode(rle_encode(data))) == b"}" * 5 + b"]" * 5


def test_rle_encoded_frame_checksums_the_encoded_body() -> None:
    framed = frame(b"0" * 10, rle=True)
    body = framed[1:-3]
    assert body == b"0*&"
    assert framed.endswith(b"#%02x" % checksum(body))


# -- the incremental reader -----------------------------------------------------


def test_reader_byte_by_byte() -> None:
    reader = PacketReader()
    events = []
    for byte in b"+$g#67-\x03" + frame(b"m1000,4"):
        events += reader.feed(bytes((byte,)))
    assert events == [Ack(), Packet(b"g"), Nack(), Interrupt(), Packet(b"m1000,4")]


def test_reader_bad_checksum_is_an_event_not_an_exception() -> None:
    reader = PacketReader()
    assert reader.feed(b"$g#00$g#zz$g#67") == [
        BadPacket("checksum 00 != 67"),
        BadPacket("checksum digits b'zz' are not hex"),
        Packet(b"g"),
    ]


def test_reader_ignores_noise_and_keeps_0x03_inside_packets() -> None:
    body = b"X1000,1:\x03"
    data = b"garbage" + frame(body)
    assert PacketReader().feed(data) == [Packet(body)]


def test_reader_restarts_on_dollar_and_limits_length() -> None:
    assert PacketReader().feed(b"$abc$g#67") == [
        BadPacket("packet restarted by '$'"),
        Packet(b"g"),
    ]
    reader = PacketReader(max_data=4)
    assert reader.feed(b"$123456#00") == [BadPacket("packet too long")]
    assert reader.feed(b"$g#67") == [Packet(b"g")]


def test_reader_expands_rle_and_reports_bad_rle() -> None:
    assert PacketReader().feed(frame(b"0* ")) == [Packet(b"0000")]
    assert PacketReader().feed(frame(b"*a")) == [
        BadPacket("run-length marker without a character or count")
    ]


# -- the acknowledgment layer -----------------------------------------------------


def test_link_acks_nacks_and_retransmits() -> None:
    sent: list[bytes] = []
    link = Link(sent.append)
    assert link.receive(b"$g#67") == [Packet(b"g")]
    assert link.receive(b"$g#66") == []
    assert sent == [b"+", b"-"]
    link.send(b"OK")
    link.receive(b"-")
    link.receive(b"+")
    assert sent[2:] == [b"$OK#9a", b"$OK#9a"]


def test_link_no_ack_mode_starts_after_the_ok() -> None:
    sent: list[bytes] = []
    link = Link(sent.append)
    link.receive(frame(b"QStartNoAckMode"))
    link.send(b"OK", no_ack_after=True)
    assert sent == [b"+", b"$OK#9a"]
    assert not link.ack_mode
    assert link.receive(b"+$g#67$g#00-") == [Packet(b"g")]
    assert sent == [b"+", b"$OK#9a"]


def test_link_passes_interrupts_through() -> None:
    link = Link(lambda _: None)
    assert link.receive(b"\x03") == [Interrupt()]


def test_link_rle_replies() -> None:
    sent: list[bytes] = []
    Link(sent.append, rle=True).send(b"000000000")
    assert sent == [frame(b"0*%")]


# -- registers -----------------------------------------------------------------


def test_register_block_round_trip() -> None:
    values = {name: 0x11223344 + i for i, name in enumerate(regs.REGISTER_NAMES)}
    text = regs.encode_registers(values)
    assert len(text) == 16 * 8
    assert text.startswith("44332211")
    assert regs.decode_registers(text) == values


def test_target_xml_general_x87_and_orig_eax() -> None:
    root = ET.fromstring(regs.target_xml().split("\n", 2)[2])
    assert root.findtext("architecture") == "i386"
    assert root.findtext("osabi") == "GNU/Linux"
    features = [f.get("name") for f in root.iter("feature")]
    assert features == ["org.gnu.gdb.i386.core", "org.gnu.gdb.i386.linux"]
    found = [(r.get("name"), r.get("bitsize"), r.get("regnum")) for r in root.iter("reg")]
    general = [(name, "32", str(i)) for i, name in enumerate(regs.REGISTER_NAMES)]
    assert found[:16] == general
    assert [name for name, _, _ in found[16:25]] == [*(f"st{i}" for i in range(8)), "fctrl"]
    assert found[32] == ("orig_eax", "32", "32")
    assert [int(num or 0) for _, _, num in found] == list(range(33))


# -- the session: registers ------------------------------------------------------


def test_stop_query_and_initial_thread() -> None:
    session, _ = make_session()
    assert ask(session, "?") == b"T05thread:1;"
    assert ask(session, "qC") == b"QC1"


def test_g_and_g_packets() -> None:
    session, target = make_session()
    reply = ask(session, "g")
    assert reply is not None and len(reply) == 128
    assert reply[:8] == b"00010000"  # eax of thread 1 = 0x100
    new = regs.encode_registers(dict.fromkeys(regs.REGISTER_NAMES, 7))
    assert ask(session, "G" + new) == b"OK"
    assert target.registers[1]["eip"] == 7
    assert ask(session, "G1234") == b"E01"
    assert ask(session, "G" + "zz" * 64) == b"E01"


def test_p_and_p_packets() -> None:
    session, target = make_session()
    assert ask(session, "p8") == b"08010000"
    assert ask(session, "P8=78563412") == b"OK"
    assert target.registers[1]["eip"] == 0x12345678
    assert ask(session, "p8") == b"78563412"
    assert ask(session, "p10") == b"x" * 20  # st0: unavailable, 80 bits
    assert ask(session, "p1f") == b"x" * 8  # fop
    assert ask(session, "p20") == b"ffffffff"  # orig_eax
    assert ask(session, "P20=00000000") == b"OK"  # accepted, ignored
    assert 32 not in target.registers.get(1, {})
    for bad in ("p21", "p", "pxyz", "P8=12", "P8", "P99=00000000", "P10=00000000", "P20=1"):
        assert ask(session, bad) == b"E01", bad


def test_hg_selects_the_register_thread() -> None:
    session, _ = make_session()
    assert ask(session, "Hg2") == b"OK"
    assert ask(session, "p0") == b"00020000"
    assert ask(session, "qC") == b"QC2"
    assert ask(session, "Hg0") == b"OK"
    assert ask(session, "p0") == b"00010000"
    assert ask(session, "Hg9") == b"E01"
    assert ask(session, "Hc-1") == b"OK"
    assert ask(session, "Hx1") == b"E01"
    assert ask(session, "Hgzz") == b"E01"


# -- the session: memory -----------------------------------------------------------


def test_read_memory_packet() -> None:
    session, _ = make_session()
    assert ask(session, "m1000,4") == b"00010203"
    assert ask(session, "m2ffe,4") == b"feff"  # short read at the end of the map
    assert ask(session, "m0,4") == b"E0e"
    assert ask(session, "mc0000000,4") == b"E0e"
    for bad in ("m", "m1000", "m1000,", "mxyz,4", "m,4"):
        assert ask(session, bad) == b"E01", bad


def test_write_memory_packet() -> None:
    session, target = make_session()
    assert ask(session, "M1000,2:abcd") == b"OK"
    assert target.memory[:2] == b"\xab\xcd"
    assert ask(session, "M0,1:00") == b"E0e"
    for bad in ("M1000,2:abc", "M1000,3:abcd", "M1000,2", "M1000:ab"):
        assert ask(session, bad) == b"E01", bad


def test_x_packet_with_escaped_binary() -> None:
    session, target = make_session()
    data = b"$#}*\x00\xff"
    assert ask(session, b"X1000,6:" + escape(data)) == b"OK"
    assert bytes(target.memory[:6]) == data
    assert ask(session, b"X1000,0:") == b"OK"
    assert ask(session, b"X0,1:a") == b"E0e"
    assert ask(session, b"X1000,2:a") == b"E01"
    assert ask(session, b"X1000,1:a}") == b"E01"
    assert ask(session, b"X1000") == b"E01"


# -- the session: breakpoints ------------------------------------------------------


@pytest.mark.parametrize("kind", [0, 2, 3, 4])
def test_z_and_z_supported_kinds(kind: int) -> None:
    session, target = make_session()
    assert ask(session, f"Z{kind},1004,1") == b"OK"
    assert (BreakKind(kind), 0x1004, 1) in target.breakpoints
    assert ask(session, f"z{kind},1004,1") == b"OK"
    assert not target.breakpoints


def test_z_unsupported_and_malformed() -> None:
    session, _ = make_session()
    assert ask(session, "Z1,1004,1") == b""
    assert ask(session, "Z7,1004,1") == b""
    assert ask(session, "Z0,0,1") == b"E0e"
    assert ask(session, "Z0,1004,1;X2,ab") == b"OK"  # conditions are ignored
    for bad in ("Z0", "Z0,1004", "Zx,1004,1", "z0,zz,1"):
        assert ask(session, bad) == b"E01", bad


# -- the session: execution ----------------------------------------------------------


def test_continue_and_step_report_stops() -> None:
    session, target = make_session()
    target.stops = [
        StopReason.signal(Signal.SIGTRAP, 1, swbreak=True),
        StopReason.signal(Signal.SIGTRAP, 2),
        StopReason.signal(Signal.SIGTRAP, 1, watch=(WatchKind.WRITE, 0x1010)),
    ]
    assert ask(session, "c") == b"T05thread:1;swbreak:;"
    assert ask(session, "s") == b"T05thread:2;"
    assert ask(session, "?") == b"T05thread:2;"
    assert ask(session, "c1000") == b"T05thread:1;watch:1010;"
    assert target.resumes == [(False, None, 0), (True, None, 0), (False, None, 0)]
    assert target.registers[2]["eip"] == 0x1000  # the thread that stopped last


def test_a_stop_report_selects_the_thread_that_stopped() -> None:
    # gdb treats the stopped thread as the stub's selected one and sends no
    # new Hg: a `g` must read that thread, not the one an earlier Hg chose.
    session, target = make_session()
    target.stops = [StopReason.signal(Signal.SIGTRAP, 2, swbreak=True)]
    assert ask(session, "Hg1") == b"OK"
    assert ask(session, "vCont;c") == b"T05thread:2;swbreak:;"
    eip = regs.REGISTER_NAMES.index("eip")
    assert ask(session, f"p{eip:x}") == regs.encode_register(0x200 + eip).encode()
    assert ask(session, "qC") == b"QC2"
    assert ask(session, "Hg1") == b"OK"  # a new choice still counts until the next stop
    assert ask(session, "qC") == b"QC1"


def test_hc_thread_is_used_for_steps() -> None:
    session, target = make_session()
    target.stops = [StopReason.signal(Signal.SIGTRAP, 2)]
    assert ask(session, "Hc2") == b"OK"
    ask(session, "s")
    assert target.resumes == [(True, 2, 0)]


@pytest.mark.parametrize(
    ("stop", "reply"),
    [
        (StopReason.signal(Signal.SIGSEGV, 1, fault_address=0), b"T0bthread:1;"),
        (StopReason.signal(Signal.SIGILL, 1), b"T04thread:1;"),
        (StopReason.signal(Signal.SIGFPE, 2), b"T08thread:2;"),
        (StopReason.signal(Signal.SIGINT, 1), b"T02thread:1;"),
        (StopReason.signal(Signal.SIGTRAP, 1, hwbreak=True), b"T05thread:1;hwbreak:;"),
        (StopReason.exited(0), b"W00"),
        (StopReason.exited(300), b"W2c"),
        (StopReason.killed(Signal.SIGSEGV), b"X0b"),
    ],
)
def test_stop_replies(stop: StopReason, reply: bytes) -> None:
    session, target = make_session()
    target.stops = [stop]
    assert ask(session, "c") == reply
    assert format_stop(stop).encode() == reply


def test_after_exit_the_program_is_gone() -> None:
    session, target = make_session()
    target.stops = [StopReason.exited(3)]
    assert ask(session, "c") == b"W03"
    assert ask(session, "?") == b"W03"
    for packet in ("g", "m1000,1", "c", "s", "Z0,1000,1"):
        assert ask(session, packet) == b"E01", packet
    reply = session.handle(b"k")
    assert reply == Reply(None, close=True)
    assert target.events == []


def test_signal_continue_passes_the_signal() -> None:
    session, target = make_session()
    target.stops = [StopReason.killed(11), StopReason.killed(11)]
    assert ask(session, "C0b") == b"X0b"
    session2, target2 = make_session()
    target2.stops = [StopReason.signal(5, 1)]
    assert ask(session2, "S05;1000") == b"T05thread:1;"
    assert target2.resumes == [(True, None, 5)]
    assert ask(session2, "Cxx") == b"E01"


def test_vcont() -> None:
    session, target = make_session()
    target.stops = [StopReason.signal(5, 1)] * 4
    assert ask(session, "vCont?") == b"vCont;c;C;s;S"
    assert ask(session, "vCont;c") == b"T05thread:1;"
    assert ask(session, "vCont;s:2;c") == b"T05thread:1;"
    assert ask(session, "vCont;s") == b"T05thread:1;"
    assert ask(session, "vCont;C0b:1") == b"T05thread:1;"
    assert target.resumes == [
        (False, None, 0),
        (True, 2, 0),
        (True, 1, 0),
        (False, None, 11),
    ]
    for bad in (
        "vCont;",
        "vCont;x",
        "vCont;c05",
        "vCont;C",
        "vCont;s:zz",
        "vCont;r1,2",
    ):
        assert ask(session, bad) == b"E01", bad


def test_parse_vcont() -> None:
    assert parse_vcont("c", 1) == Resume(step=False)
    assert parse_vcont("c:-1", 1) == Resume(step=False)
    assert parse_vcont("s:3;c", 1) == Resume(step=True, thread=3)
    assert parse_vcont("S04;c", 2) == Resume(step=True, thread=2, signal=4)


# -- the session: threads and queries ------------------------------------------------


def test_thread_queries() -> None:
    session, _target = make_session(thread_ids=[1, 2, 0x1A])
    assert ask(session, "qfThreadInfo") == b"m1,2,1a"
    assert ask(session, "qsThreadInfo") == b"l"
    assert ask(session, "T1a") == b"OK"
    assert ask(session, "T3") == b"E01"
    assert ask(session, "Tzz") == b"E01"


def test_qsupported_and_friends() -> None:
    session, _ = make_session()
    reply = ask(session, "qSupported:multiprocess+;swbreak+;hwbreak+;xmlRegisters=i386")
    assert reply is not None
    features = reply.split(b";")
    assert b"PacketSize=4000" in features
    for feature in (b"qXfer:features:read+", b"QStartNoAckMode+", b"vContSupported+"):
        assert feature in features
    assert ask(session, "qAttached") == b"1"
    assert ask(session, "qAttached:1") == b"1"
    assert session.handle(b"QStartNoAckMode") == Reply(b"OK", no_ack_after=True)


def test_qxfer_target_xml_in_pieces() -> None:
    session, _ = make_session()
    document = regs.target_xml().encode()
    pieces, offset = [], 0
    while True:
        reply = ask(session, f"qXfer:features:read:target.xml:{offset:x},40")
        assert reply is not None and reply[:1] in (b"m", b"l")
        pieces.append(unescape(reply[1:]))
        offset += 0x40
        if reply[:1] == b"l":
            break
    assert b"".join(pieces) == document
    assert ask(session, "qXfer:features:read:other.xml:0,40") == b"E00"
    assert ask(session, "qXfer:features:read:target.xml:0") == b"E01"


def test_qxfer_siginfo_of_a_page_fault() -> None:
    session, target = make_session()
    trap_info = struct.pack("<iiiI", 5, 0, 0, 0) + bytes(112)
    assert ask(session, "qXfer:siginfo:read::0,80") == b"l" + escape(trap_info)
    target.stops = [
        StopReason.signal(Signal.SIGSEGV, 1, fault_address=0x234, fault_code=SEGV_MAPERR),
        StopReason.killed(Signal.SIGSEGV),
    ]
    ask(session, "c")
    reply = ask(session, "qXfer:siginfo:read::0,200")
    assert reply is not None and reply[:1] == b"l"
    info = unescape(reply[1:])
    assert len(info) == 128
    assert struct.unpack("<iiiI", info[:16]) == (11, 0, 1, 0x234)
    assert ask(session, "qXfer:siginfo:read::10,4") == b"m" + escape(info[16:20])
    assert ask(session, "c") == b"X0b"
    assert ask(session, "qXfer:siginfo:read::0,80") == b"E01"
    assert ask(session, "qXfer:libraries:read::0,80") == b""


def test_siginfo_uses_linux_signal_numbers() -> None:
    info = siginfo(StopReason.signal(Signal.SIGBUS, 1))
    assert struct.unpack("<i", info[:4]) == (7,)


def test_unknown_packets_get_the_empty_reply() -> None:
    session, _ = make_session()
    for packet in ("vMustReplyEmpty", "qTStatus", "!", "qOffsets", "Qfoo", "b", "\x7f"):
        assert ask(session, packet) == b"", packet
    assert ask(session, b"") == b""
    assert ask(session, b"\xff\xfe") == b""


def test_detach_and_kill() -> None:
    session, target = make_session()
    assert session.handle(b"D") == Reply(b"OK", close=True)
    assert target.events == ["detach"]
    session, target = make_session()
    assert session.handle(b"D;1") == Reply(b"OK", close=True)
    session, target = make_session()
    assert session.handle(b"k") == Reply(None, close=True)
    assert target.events == ["kill"]
    session, target = make_session()
    assert ask(session, "vKill;1") == b"OK"
    assert target.events == ["kill"]
    assert ask(session, "?") == b"X09"


def test_target_errors_become_error_replies() -> None:
    class Refusing(FakeTarget):
        def read_registers(self, thread: int) -> dict[str, int]:
            raise TargetError("no")

    session = GdbSession(Refusing(), StopReason.signal(5, 1))
    assert session.handle(b"g").data == b"E01"


def test_no_thread_alive_is_an_error() -> None:
    session, _ = make_session(thread_ids=[])
    assert ask(session, "qC") == b"E01"
    assert ask(session, "g") == b"E01"


# -- the TCP server -------------------------------------------------------------------


class RunningTarget(FakeTarget):
    """Steps add one to eip; continue runs to the next breakpoint, or exits 7.

    With ``hang`` set, continue waits for :meth:`interrupt` and stops with
    SIGINT, like a program in an endless loop.
    """

    def __init__(self, hang: bool = False) -> None:
        super().__init__()
        self.hang = hang
        self.interrupted = threading.Event()
        self.write_registers(1, {"eip": 0x1000, "esp": 0x2000, "ebp": 0x2000})

    def resume(self, step: bool, thread: int | None, signal: int = 0) -> StopReason:
        self.resumes.append((step, thread, signal))
        tid = thread or 1
        eip = self.read_registers(tid)["eip"]
        if step:
            self.write_registers(tid, {"eip": eip + 1})
            return StopReason.signal(Signal.SIGTRAP, tid)
        if self.hang:
            self.interrupted.wait(10)
            return StopReason.signal(Signal.SIGINT, tid)
        later = sorted(a for k, a, _ in self.breakpoints if k is BreakKind.SOFTWARE and a > eip)
        if not later:
            return StopReason.exited(7)
        self.write_registers(tid, {"eip": later[0]})
        return StopReason.signal(Signal.SIGTRAP, tid, swbreak=True)

    def interrupt(self) -> None:
        super().interrupt()
        self.interrupted.set()


def serve_in_thread(target: FakeTarget) -> tuple[GdbServer, list[StopReason]]:
    server = GdbServer(target)
    result: list[StopReason] = []
    threading.Thread(
        target=lambda: result.append(server.serve(StopReason.signal(Signal.SIGTRAP, 1))),
        daemon=True,
    ).start()
    return server, result


def wait_for(result: list[StopReason]) -> StopReason:
    for _ in range(500):
        if result:
            return result[0]
        time.sleep(0.01)
    raise AssertionError("the server did not finish")


def read_until(sock: socket.socket, end: bytes) -> bytes:
    sock.settimeout(60)  # a reply that never comes fails the test, not CI
    data = b""
    while not data.endswith(end):
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    return data


def test_server_ack_nack_interrupt_and_detach_on_disconnect() -> None:
    target = RunningTarget(hang=True)
    server, result = serve_in_thread(target)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"$?#3f")
        assert read_until(sock, frame(b"T05thread:1;")) == b"+" + frame(b"T05thread:1;")
        sock.sendall(b"+$g#00")  # bad checksum
        assert sock.recv(1) == b"-"
        sock.sendall(frame(b"c"))
        time.sleep(0.1)
        sock.sendall(b"\x03")
        reply = read_until(sock, frame(b"T02thread:1;"))
        assert reply.endswith(frame(b"T02thread:1;"))
        sock.sendall(b"-")  # ask again
        assert read_until(sock, frame(b"T02thread:1;")) == frame(b"T02thread:1;")
    assert wait_for(result) == StopReason.signal(Signal.SIGINT, 1)
    assert target.events == ["interrupt", "detach"]
    server.close()


def test_server_survives_garbage_and_kill() -> None:
    target = RunningTarget()
    server, result = serve_in_thread(target)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"junk$#00$m1000,zz#%02x" % checksum(b"m1000,zz"))
        assert read_until(sock, frame(b"E01")).endswith(frame(b"E01"))
        sock.sendall(b"+" + frame(b"k"))
        assert sock.recv(100) == b"+"
        assert sock.recv(100) == b""
    assert wait_for(result).running
    assert target.events == ["kill"]


GDB = shutil.which("gdb")


@pytest.mark.skipif(GDB is None, reason="gdb is not installed")
def test_real_gdb_against_a_fake_target() -> None:
    target = RunningTarget()
    server, result = serve_in_thread(target)
    commands = [
        f"target remote 127.0.0.1:{server.port}",
        "info registers eip esp",
        "p $st0",
        "p $xmm0",
        "set $eax = 0x1234",
        "p/x $eax",
        "x/4xb 0x1000",
        "x/4xb 0",
        "set var *(unsigned char *)0x1001 = 0x77",
        "x/2xb 0x1000",
        "stepi",
        "p $pc",
        "break *0x1010",
        "continue",
        "p $pc",
        "info threads",
        "continue",
    ]
    args = [GDB or "gdb", "-nx", "-batch", "-ex", "set architecture i386"]
    for command in commands:
        args += ["-ex", command]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    out = done.stdout + done.stderr
    assert "rejected" not in out, out
    assert re.search(r"eip\s+0x1000\s", out), out
    assert "$1 = <unavailable>" in out, out
    assert "$2 = void" in out, out
    assert "$3 = 0x1234" in out, out
    assert "0x1000:\t0x00\t0x01\t0x02\t0x03" in out, out
    assert "Cannot access memory at address 0x0" in out, out
    assert "0x1000:\t0x00\t0x77" in out, out
    assert "$4 = (void (*)()) 0x1001" in out, out
    assert "hit Breakpoint 1" in out and "$5 = (void (*)()) 0x1010" in out, out
    assert "exited with code 07" in out, out
    assert wait_for(result) == StopReason.exited(7)
    assert target.registers[1]["eax"] == 0x1234
    server.close()


# -- the pynova kernel under a real gdb -------------------------------------------------

THREADS_C = """
#include "pynova.h"
volatile int flag;
void worker(void *arg) { flag = 1; for (;;) thr_yield(); }
int main(void)
{
    thread_create(worker, 0);
    while (!flag)
        thr_yield();
    exit(5);
}
"""


@dataclass
class DebuggedRun:
    """A kernel running one program under serve_gdb in a thread."""

    port: int
    console: object
    done: threading.Event
    outcome: list[object]


def start_debugged(program: Path, *, wait: bool = True) -> DebuggedRun:
    """Run ``program`` as ``pynova run --gdb 0 [--gdb-wait]`` would: through
    ``run_image`` with ``serve_gdb`` as its setup hook."""
    from pynova.machine import Console
    from pynova.runner import run_image
    from pynova.tools.gdbstub.debug_run import serve_gdb

    ports: queue.Queue[int] = queue.Queue()
    console = Console()
    run = DebuggedRun(0, console, threading.Event(), [])

    def main() -> None:
        result = run_image(
            program.read_bytes(),
            str(program),
            mem_size=32 << 20,
            console=console,
            setup=lambda kernel: serve_gdb(kernel, 0, wait=wait, on_listen=ports.put),
        )
        run.outcome.append(result)
        run.done.set()

    threading.Thread(target=main, daemon=True).start()
    run.port = ports.get(timeout=30)
    return run


def gdb_batch(program: Path, port: int, commands: list[str]) -> str:
    args = [GDB or "gdb", "-nx", "-batch", "-ex", "set confirm off"]
    args += ["-ex", f"target remote 127.0.0.1:{port}"]
    for command in commands:
        args += ["-ex", command]
    done = subprocess.run([*args, str(program)], capture_output=True, text=True, timeout=120)
    return done.stdout + done.stderr


def example(name: str) -> Path:
    toolchain = pytest.importorskip("pynova.toolchain")
    try:
        return toolchain.example_path(name)
    except toolchain.ToolchainError as err:
        pytest.skip(f"no i386 toolchain: {err}")


needs_gdb = pytest.mark.skipif(GDB is None, reason="gdb is not installed")


@needs_gdb
def test_gdb_hello_break_main_next_and_exit() -> None:
    program = example("hello")
    run = start_debugged(program)
    out = gdb_batch(
        program,
        run.port,
        [
            "break main",
            "break *print",
            "continue",
            "info registers eip",
            "continue",
            "x/s *(char **)($esp + 4)",
            "delete",
            "finish",
            "next",
            "continue",
            "continue",
        ],
    )
    assert '"Hello world!\\n"' in out, out
    assert run.done.wait(30), out
    assert "Breakpoint 1, main ()" in out, out
    assert re.search(r"eip\s+0x[0-9a-f]+\s+0x[0-9a-f]+ <main\+\d+>", out), out
    assert "Program received signal SIGILL" in out, out
    assert "Program terminated with signal SIGILL" in out, out
    assert "Hello world!" in run.console.output  # type: ignore[attr-defined]
    assert run.outcome[0].status == 132  # type: ignore[attr-defined]


@needs_gdb
def test_gdb_pagefault_stops_with_sigsegv_and_siginfo() -> None:
    program = example("pagefault")
    run = start_debugged(program)
    out = gdb_batch(
        program,
        run.port,
        ["continue", "p $_siginfo._sifields._sigfault.si_addr", "p $pc == main", "continue"],
    )
    assert run.done.wait(30), out
    assert "Program received signal SIGSEGV" in out, out
    assert "$1 = (void *) 0x234" in out, out
    assert "$2 = 1" in out, out
    assert "Program terminated with signal SIGSEGV" in out, out
    assert run.outcome[0].status == 139  # type: ignore[attr-defined]


@needs_gdb
def test_gdb_exit_status_memory_and_registers() -> None:
    program = example("exit42")
    run = start_debugged(program)
    out = gdb_batch(
        program,
        run.port,
        ["break main", "continue", "set $eax = 0x5a5a", "p/x $eax", "x/2i $pc", "continue"],
    )
    assert run.done.wait(30), out
    assert "$1 = 0x5a5a" in out, out
    assert "exited with code 052" in out, out
    assert run.outcome[0].status == 42  # type: ignore[attr-defined]


@needs_gdb
def test_gdb_threads(tmp_path: Path) -> None:
    toolchain = pytest.importorskip("pynova.toolchain")
    source = tmp_path / "threads.c"
    source.write_text(THREADS_C)
    try:
        program = toolchain.build_program([source], tmp_path / "threads")
    except toolchain.ToolchainError as err:
        pytest.skip(f"no i386 toolchain: {err}")
    run = start_debugged(program)
    out = gdb_batch(
        program,
        run.port,
        ["break worker", "continue", "info threads", "thread 1", "p $pc", "continue"],
    )
    assert run.done.wait(30), out
    assert re.search(r"Thread 2 hit Breakpoint 1, worker", out), out
    assert re.search(r"\* 2\s+Thread 2", out) and re.search(r"\n\s+1\s+Thread 1", out), out
    assert "exited with code 05" in out, out


def test_ctrl_c_stops_a_spinning_program_and_detach_lets_it_finish(tmp_path: Path) -> None:
    from pynova.kernel.loader import plan
    from pynova.kernel.ptab import RW

    program = spin_program(tmp_path)
    text = [v for run in plan(program.read_bytes()).runs if not run.attr & RW
            for v in range(run.virt, run.end, 4096)]
    run = start_debugged(program)
    with socket.create_connection(("127.0.0.1", run.port)) as sock:
        sock.sendall(frame(b"QStartNoAckMode"))
        read_until(sock, frame(b"OK"))
        sock.sendall(frame(b"c"))
        time.sleep(0.3)
        sock.sendall(b"\x03")
        assert read_until(sock, frame(b"T02thread:1;")).endswith(frame(b"T02thread:1;"))
        sock.sendall(frame(b"p8"))
        reply = sock.recv(4096)
        while not re.search(rb"#..$", reply):
            reply += sock.recv(4096)
        eip = int.from_bytes(bytes.fromhex(reply[1:9].decode()), "little")
        assert text[0] <= eip < text[-1] + 0x1000, reply
        sock.sendall(frame(b"s"))
        assert read_until(sock, frame(b"T05thread:1;")).endswith(frame(b"T05thread:1;"))
        sock.sendall(frame(b"D"))
        read_until(sock, frame(b"OK"))
    assert run.done.wait(60)
    assert "done" in run.console.output  # type: ignore[attr-defined]
    assert run.outcome[0].status == 132  # type: ignore[attr-defined]


def spin_program(tmp_path: Path) -> Path:
    """A spin that outlasts the tests' sleeps: about 2 s with either library
    (the patched one runs the loop some 15 times faster)."""
    toolchain = pytest.importorskip("pynova.toolchain")
    from pynova.machine.uc_abi import load_library

    source = toolchain.examples_dir() / "spin.c"
    iterations = 600_000_000 if load_library().patched else 60_000_000
    try:
        return toolchain.build_program(
            [source], tmp_path / "spin", extra_cflags=[f"-DITER={iterations}u"]
        )
    except toolchain.ToolchainError as err:
        pytest.skip(f"no i386 toolchain: {err}")


def test_attach_to_a_running_program_then_kill(tmp_path: Path) -> None:
    run = start_debugged(spin_program(tmp_path), wait=False)
    time.sleep(0.2)
    with socket.create_connection(("127.0.0.1", run.port)) as sock:
        sock.sendall(frame(b"?"))
        assert read_until(sock, frame(b"T05thread:1;")) == b"+" + frame(b"T05thread:1;")
        sock.sendall(b"+" + frame(b"k"))
        assert run.done.wait(30)
    assert run.outcome[0].status == 137  # type: ignore[attr-defined]
    assert "done" not in run.console.output  # type: ignore[attr-defined]


def test_disconnect_while_running_lets_the_program_finish(tmp_path: Path) -> None:
    run = start_debugged(spin_program(tmp_path))
    with socket.create_connection(("127.0.0.1", run.port)) as sock:
        sock.sendall(frame(b"Z0,2000,1") + frame(b"c"))
        time.sleep(0.2)
    assert run.done.wait(60)
    assert "done" in run.console.output  # type: ignore[attr-defined]
    assert run.outcome[0].status == 132  # type: ignore[attr-defined]
