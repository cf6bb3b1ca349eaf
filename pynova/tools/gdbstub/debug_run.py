"""``pynova run PROGRAM --gdb PORT [--gdb-wait]``: run a booted kernel's task
under a gdb stub.

With ``wait`` the task stops before its first user instruction until gdb
connects, like ``qemu -S``. Without it the task runs at once and a gdb that
connects later stops it where it is (reported as SIGTRAP, like an attach);
a task that ends before anyone connects ends as usual.

:func:`serve_gdb` returns when the gdb session is over. If the task still
runs then (gdb detached or disconnected), the caller runs it on as usual,
``kernel.run(...)`` with its limits; so ``serve_gdb`` fits ``run_image``'s
``setup`` hook, which is called before the first user instruction.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from pynova.kernel import Kernel, Outcome
from pynova.tools.gdbstub.kernel_target import KernelTarget
from pynova.tools.gdbstub.server import GdbServer
from pynova.tools.gdbstub.stop import Signal, StopReason


def serve_gdb(
    kernel: Kernel,
    port: int,
    *,
    wait: bool,
    on_listen: Callable[[int], None] | None = None,
) -> Outcome | None:
    """Serve gdb on 127.0.0.1:``port`` for ``kernel``'s task.

    Returns the task's outcome if it ended during the session, else None
    (the caller runs it on). ``on_listen`` gets the port actually used
    (``port`` 0 picks one) once the socket listens, e.g. to tell the user
    where to connect. ``OSError`` if the port cannot be bound.
    """
    target = KernelTarget(kernel)
    server = GdbServer(target, port)
    try:
        if on_listen is not None:
            on_listen(server.port)
        if wait:
            first = kernel.ready[0].id + 1
            server.serve(StopReason.signal(Signal.SIGTRAP, first))
        else:
            _run_until_attached(server, target)
    finally:
        server.close()
    return kernel.outcome


def _run_until_attached(server: GdbServer, target: KernelTarget) -> None:
    """Run the task while waiting for gdb; serve it if it comes in time."""
    accepted: list[socket.socket] = []

    def accept() -> None:
        try:
            accepted.append(server.accept())
        except OSError:
            return  # the listener was closed: the task ended first
        target.interrupt()

    waiter = threading.Thread(target=accept, name="gdb-accept", daemon=True)
    waiter.start()
    stop = target.resume(step=False, thread=None)
    if not accepted or not stop.running:
        server.close()
        waiter.join(timeout=1.0)
        for conn in accepted:
            conn.close()
        return
    if stop.value == Signal.SIGINT:  # stopped for the attach, not by the task
        stop = StopReason.signal(Signal.SIGTRAP, stop.thread)
    server.serve_connection(accepted[0], stop)
