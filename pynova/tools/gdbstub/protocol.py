"""A transport-independent GDB remote protocol session.

:class:`GdbSession` turns one packet body into one :class:`Reply` by
calling a :class:`~pynova.tools.gdbstub.target.Target`. Framing and acks are
the :mod:`link` layer's job; threads and sockets are the server's.

Errors: a malformed packet (bad hex, a missing field) answers ``E01``; a
target refusal answers ``E<errno>`` (``E0e`` for an unmapped address); an
unknown or unsupported packet answers with the empty packet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pynova.tools.gdbstub import regs
from pynova.tools.gdbstub.hexutil import HexError, from_hex, parse_hex_int, to_hex
from pynova.tools.gdbstub.packet import escape, unescape
from pynova.tools.gdbstub.siginfo import siginfo
from pynova.tools.gdbstub.stop import StopReason, format_stop
from pynova.tools.gdbstub.target import BreakKind, Target, TargetError
from pynova.tools.gdbstub.vcont import Resume, parse_thread_id, parse_vcont

PACKET_SIZE = 0x4000
MAX_MEMORY_READ = (PACKET_SIZE - 32) // 2
SUPPORTED = (
    f"PacketSize={PACKET_SIZE:x};qXfer:features:read+;qXfer:siginfo:read+;QStartNoAckMode+;"
    "vContSupported+;swbreak+;hwbreak+"
)
VCONT_ACTIONS = "vCont;c;C;s;S"
ERR_MALFORMED = b"E01"
ANY_THREAD = 0
ALL_THREADS = -1


@dataclass(frozen=True)
class Reply:
    """What to send back: a packet body (None: nothing), and what follows.

    ``no_ack_after``: stop acknowledging once this reply is sent.
    ``close``: end the session after sending.
    """

    data: bytes | None
    no_ack_after: bool = False
    close: bool = False


def _ok() -> Reply:
    return Reply(b"OK")


def _empty() -> Reply:
    return Reply(b"")


def _text(text: str) -> Reply:
    return Reply(text.encode("latin-1"))


class GdbSession:
    """Dispatches packets to a target and formats the replies."""

    def __init__(self, target: Target, initial_stop: StopReason) -> None:
        self._target = target
        self._stop = initial_stop
        self._g_thread = ANY_THREAD
        self._c_thread = ALL_THREADS
        self._handlers: dict[str, Callable[[str], Reply]] = {
            "?": lambda _: self._report(self._stop),
            "g": self._read_registers,
            "G": self._write_registers,
            "p": self._read_register,
            "P": self._write_register,
            "m": self._read_memory,
            "M": self._write_memory,
            "Z": self._insert_breakpoint,
            "z": self._remove_breakpoint,
            "c": self._continue,
            "C": self._continue_signal,
            "s": self._step,
            "S": self._step_signal,
            "H": self._set_thread,
            "T": self._thread_alive,
            "D": self._detach,
            "k": self._kill,
            "q": self._query,
            "Q": self._query,
            "v": self._v_packet,
        }

    @property
    def last_stop(self) -> StopReason:
        """The most recent stop reported to gdb."""
        return self._stop

    def handle(self, packet: bytes) -> Reply:
        """Answer one packet body; never raises for bad input."""
        try:
            return self._dispatch(packet)
        except (HexError, ValueError, IndexError):
            return Reply(ERR_MALFORMED)
        except TargetError as err:
            return Reply(b"E%02x" % (err.errno & 0xFF))

    def _dispatch(self, packet: bytes) -> Reply:
        if packet.startswith(b"X"):
            return self._write_binary(packet[1:])
        text = packet.decode("latin-1")
        handler = self._handlers.get(text[:1])
        return handler(text[1:]) if handler else _empty()

    # -- threads -----------------------------------------------------------

    def _current_thread(self) -> int:
        live = self._target.threads()
        if self._g_thread > 0 and self._g_thread in live:
            return self._g_thread
        if self._stop.thread in live:
            return self._stop.thread  # type: ignore[return-value]
        if not live:
            raise TargetError("no thread is alive")
        return live[0]

    def _require_alive(self) -> None:
        if not self._stop.running:
            raise TargetError("the program has ended")

    def _set_thread(self, args: str) -> Reply:
        op, thread = args[:1], parse_thread_id(args[1:])
        if op not in ("g", "c"):
            return Reply(ERR_MALFORMED)
        if thread > 0 and thread not in self._target.threads():
            raise TargetError(f"no thread {thread}")
        if op == "g":
            self._g_thread = thread
        else:
            self._c_thread = thread
        return _ok()

    def _thread_alive(self, args: str) -> Reply:
        thread = parse_thread_id(args)
        return _ok() if thread in self._target.threads() else Reply(b"E01")

    def _thread_list(self) -> Reply:
        return _text("m" + ",".join(f"{t:x}" for t in self._target.threads()))

    # -- registers -----------------------------------------------------------

    def _read_registers(self, _: str) -> Reply:
        self._require_alive()
        values = self._target.read_registers(self._current_thread())
        return _text(regs.encode_registers(values))

    def _write_registers(self, args: str) -> Reply:
        self._require_alive()
        self._target.write_registers(self._current_thread(), regs.decode_registers(args))
        return _ok()

    def _read_register(self, args: str) -> Reply:
        self._require_alive()
        number = parse_hex_int(args)
        if number >= len(regs.REGISTER_NAMES):
            return _text(regs.read_extra_register(number))
        values = self._target.read_registers(self._current_thread())
        return _text(regs.encode_register(values[regs.register_name(number)]))

    def _write_register(self, args: str) -> Reply:
        self._require_alive()
        number_text, _, value_text = args.partition("=")
        number, value = parse_hex_int(number_text), regs.decode_register(value_text)
        if number != regs.ORIG_EAX:  # orig_eax: accepted and ignored
            new = {regs.register_name(number): value}
            self._target.write_registers(self._current_thread(), new)
        return _ok()

    # -- memory -----------------------------------------------------------

    @staticmethod
    def _address_length(text: str) -> tuple[int, int]:
        address, sep, length = text.partition(",")
        if not sep:
            raise HexError("missing length")
        return parse_hex_int(address), parse_hex_int(length)

    def _read_memory(self, args: str) -> Reply:
        self._require_alive()
        address, length = self._address_length(args)
        data = self._target.read_memory(address, min(length, MAX_MEMORY_READ))
        return _text(to_hex(data))

    def _write_memory(self, args: str) -> Reply:
        self._require_alive()
        where, sep, payload = args.partition(":")
        address, length = self._address_length(where)
        data = from_hex(payload)
        if not sep or len(data) != length:
            return Reply(ERR_MALFORMED)
        self._target.write_memory(address, data)
        return _ok()

    def _write_binary(self, args: bytes) -> Reply:
        where, sep, payload = args.partition(b":")
        address, length = self._address_length(where.decode("latin-1"))
        data = unescape(payload)
        if not sep or len(data) != length:
            return Reply(ERR_MALFORMED)
        if length:
            self._require_alive()
            self._target.write_memory(address, data)
        return _ok()

    # -- breakpoints -----------------------------------------------------------

    def _breakpoint_args(self, args: str) -> tuple[BreakKind, int, int] | None:
        kind, _, rest = args.partition(",")
        address, length = self._address_length(rest.partition(";")[0])
        number = parse_hex_int(kind)
        if number not in BreakKind._value2member_map_:
            return None
        return BreakKind(number), address, length

    def _insert_breakpoint(self, args: str) -> Reply:
        parsed = self._breakpoint_args(args)
        self._require_alive()
        if parsed is None or not self._target.insert_breakpoint(*parsed):
            return _empty()
        return _ok()

    def _remove_breakpoint(self, args: str) -> Reply:
        parsed = self._breakpoint_args(args)
        self._require_alive()
        if parsed is None or not self._target.remove_breakpoint(*parsed):
            return _empty()
        return _ok()

    # -- execution -----------------------------------------------------------

    def _resume(self, request: Resume, address: str = "") -> Reply:
        self._require_alive()
        thread = request.thread
        if thread is None and self._c_thread > 0:
            thread = self._c_thread
        if address:
            target_thread = thread if thread is not None else self._current_thread()
            self._target.write_registers(target_thread, {"eip": parse_hex_int(address)})
        return self._report(self._target.resume(request.step, thread, request.signal))

    def _report(self, stop: StopReason) -> Reply:
        """A stop reply. gdb takes the thread that stopped as the stub's
        selected thread from now on (remote.c's record_currthread) and reads
        its registers without another ``Hg``, so a thread chosen earlier is
        forgotten here."""
        self._stop = stop
        self._g_thread = ANY_THREAD
        return _text(format_stop(stop))

    def _continue(self, args: str) -> Reply:
        return self._resume(Resume(step=False), args)

    def _step(self, args: str) -> Reply:
        return self._resume(Resume(step=True), args)

    def _continue_signal(self, args: str) -> Reply:
        sig, _, address = args.partition(";")
        return self._resume(Resume(step=False, signal=parse_hex_int(sig)), address)

    def _step_signal(self, args: str) -> Reply:
        sig, _, address = args.partition(";")
        return self._resume(Resume(step=True, signal=parse_hex_int(sig)), address)

    def _detach(self, _: str) -> Reply:
        if self._stop.running:
            self._target.detach()
        return Reply(b"OK", close=True)

    def _kill(self, _: str) -> Reply:
        if self._stop.running:
            self._target.kill()
        return Reply(None, close=True)

    # -- q, Q and v packets -----------------------------------------------------

    def _query(self, args: str) -> Reply:
        if args.startswith("Xfer:"):
            return self._xfer(args[len("Xfer:") :])
        name = args.split(":", 1)[0].split(",", 1)[0]
        answer = {
            "Supported": lambda: _text(SUPPORTED),
            "StartNoAckMode": lambda: Reply(b"OK", no_ack_after=True),
            "Attached": lambda: _text("1"),
            "fThreadInfo": self._thread_list,
            "sThreadInfo": lambda: _text("l"),
            "C": lambda: _text(f"QC{self._current_thread():x}"),
        }.get(name)
        return answer() if answer else _empty()

    def _xfer(self, args: str) -> Reply:
        """``qXfer:OBJECT:read:ANNEX:OFFSET,LENGTH``."""
        obj, _, rest = args.partition(":read:")
        annex, _, span = rest.partition(":")
        offset, length = self._address_length(span)
        if obj == "features":
            if annex != "target.xml":
                return Reply(b"E00")
            document = regs.target_xml().encode()
        elif obj == "siginfo" and not annex:
            document = siginfo(self._stop)
        else:
            return _empty()
        chunk = document[offset : offset + length]
        more = offset + length < len(document)
        return Reply((b"m" if more else b"l") + escape(chunk))

    def _v_packet(self, args: str) -> Reply:
        if args == "Cont?":
            return _text(VCONT_ACTIONS)
        if args.startswith("Cont;"):
            return self._resume(parse_vcont(args[len("Cont;") :], self._current_thread()))
        if args.startswith("Kill"):
            if self._stop.running:
                self._target.kill()
            self._stop = StopReason.killed(9)
            return _ok()
        return _empty()
