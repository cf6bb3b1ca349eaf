"""The TCP transport: one gdb client on 127.0.0.1:PORT, one target.

Two threads share the connection. A reader thread turns received bytes into
packets (acknowledging them through the :class:`Link`) and forwards the
Ctrl-C byte straight to :meth:`Target.interrupt`, so an interrupt reaches a
target that is busy inside :meth:`Target.resume`. The thread that called
:meth:`GdbServer.serve` runs the :class:`GdbSession`, one packet at a time.

When the client disconnects without ``D`` or ``k`` the program is detached
and runs on to its end, as after ``detach``.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading

from pynova.tools.gdbstub.link import Link
from pynova.tools.gdbstub.packet import Interrupt, Packet
from pynova.tools.gdbstub.protocol import GdbSession
from pynova.tools.gdbstub.stop import StopReason
from pynova.tools.gdbstub.target import Target

LOG = logging.getLogger(__name__)
RECV_SIZE = 4096
WAIT_STEP = 3600.0

_Inbox = queue.Queue[Packet | None]


class GdbServer:
    """Listens on ``host:port`` (port 0 picks a free one, see :attr:`port`)."""

    def __init__(self, target: Target, port: int = 0, host: str = "127.0.0.1") -> None:
        self._target = target
        self._listener = socket.create_server((host, port))

    @property
    def port(self) -> int:
        """The TCP port actually listened on."""
        return int(self._listener.getsockname()[1])

    def close(self) -> None:
        """Stop listening. Shutting the socket down first wakes a thread
        blocked in :meth:`accept` (on Linux close() alone does not)."""
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not connected/listening any more
        self._listener.close()

    def serve(self, initial_stop: StopReason) -> StopReason:
        """Wait for one client and debug until it leaves; the last stop.
        If the target's time limit runs out first, the target ends and
        ``initial_stop`` is returned."""
        while True:
            try:
                conn = self.accept(timeout=_step(self._target.time_left()))
                break
            except TimeoutError:  # (socket.timeout)
                if not self._target.time_left():
                    LOG.info("no gdb came before the time limit")
                    self._target.time_up()
                    return initial_stop
        return self.serve_connection(conn, initial_stop)

    def accept(self, timeout: float | None = None) -> socket.socket:
        """Wait for the client (``OSError`` once :meth:`close` was called,
        ``TimeoutError`` after ``timeout`` seconds)."""
        if timeout is not None and timeout <= 0:
            raise TimeoutError("no time left")
        self._listener.settimeout(timeout)
        conn, peer = self._listener.accept()
        LOG.info("gdb connected from %s:%d", *peer[:2])
        return conn

    def serve_connection(self, conn: socket.socket, initial_stop: StopReason) -> StopReason:
        """Debug over an accepted connection until the client leaves."""
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return self._run_session(conn, GdbSession(self._target, initial_stop))

    def _run_session(self, conn: socket.socket, session: GdbSession) -> StopReason:
        link = Link(lambda data: _send_quietly(conn, data))
        inbox: _Inbox = queue.Queue()
        reader = threading.Thread(
            target=self._read_loop,
            args=(conn, link, inbox),
            name="gdb-reader",
            daemon=True,
        )
        reader.start()
        closed_by_gdb = self._dispatch_loop(session, link, inbox)
        if not closed_by_gdb and session.last_stop.running:
            LOG.info("gdb disconnected; the program runs on")
            self._target.detach()
        _shutdown_quietly(conn)
        reader.join(timeout=1.0)
        return session.last_stop

    def _dispatch_loop(self, session: GdbSession, link: Link, inbox: _Inbox) -> bool:
        """Answer packets until ``D``/``k`` or the time limit (True) or
        disconnection (False). The time limit holds while gdb keeps the
        program stopped too: the program then ends and the connection
        closes."""
        while True:
            try:
                packet = inbox.get(timeout=_step(self._target.time_left()))
            except queue.Empty:
                if self._target.time_left():
                    continue
                LOG.info("the time limit ran out while gdb held the program")
                self._target.time_up()
                return True
            if packet is None:
                return False
            reply = session.handle(packet.data)
            if reply.data is not None:
                link.send(reply.data, no_ack_after=reply.no_ack_after)
            if reply.close:
                return True

    def _read_loop(self, conn: socket.socket, link: Link, inbox: _Inbox) -> None:
        try:
            while chunk := conn.recv(RECV_SIZE):
                for item in link.receive(chunk):
                    if isinstance(item, Interrupt):
                        self._target.interrupt()
                    else:
                        inbox.put(item)
        except OSError as err:
            LOG.info("gdb connection lost: %s", err)
        finally:
            inbox.put(None)


def _step(left: float | None) -> float | None:
    """A wait of at most WAIT_STEP seconds towards a limit ``left`` away
    (socket and lock timeouts overflow far below a finite float's range)."""
    return None if left is None else min(left, WAIT_STEP)


def _send_quietly(conn: socket.socket, data: bytes) -> None:
    """Send, treating a vanished client as the reader thread will see it."""
    try:
        conn.sendall(data)
    except OSError as err:
        LOG.info("cannot send to gdb: %s", err)


def _shutdown_quietly(conn: socket.socket) -> None:
    """Unblock the reader thread's ``recv``; the client may be gone already."""
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
