"""Ctrl-C for ``pynova run``: SIGINT stops the emulated CPU at once.

Python runs a signal handler only in the main thread, between bytecodes;
while the CPU runs guest code in C (a loop without system calls) that
never happens. But the C-level handler writes the signal's number to the
wakeup file descriptor (``signal.set_wakeup_fd``) at once: a watcher thread
reads it and asks the kernel to stop the CPU. The Python-level handler runs
in the main thread: while the CPU runs (it may be inside one of the CPU's
hooks, where ctypes would swallow an exception) it only tells the kernel,
which raises KeyboardInterrupt once the CPU is back; anywhere else it raises
KeyboardInterrupt itself. The CLI turns that into status 130 (128 + SIGINT)
with its one-line note.

Signal handlers are the process's, so only the CLI installs this; the
Python API leaves SIGINT to the program that calls it.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType, TracebackType
from typing import Protocol


class Stoppable(Protocol):
    in_cpu: bool

    def request_stop(self) -> None: ...
    def interrupt(self) -> None: ...


class CtrlC:
    """A context manager (enter it in the main thread); ``attach`` names
    the kernel to stop once it exists (a ``run_image`` setup hook)."""

    def __init__(self) -> None:
        self._kernel: Stoppable | None = None
        self._lock = threading.Lock()
        self._read_fd = self._write_fd = -1
        self._old_fd = -1
        self._old_handler: object = None
        self._watcher: threading.Thread | None = None

    def attach(self, kernel: Stoppable) -> None:
        with self._lock:
            self._kernel = kernel

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is not threading.main_thread() \
                or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            return self  # not the main thread, or SIGINT ignored (nohup, a background job)
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)  # set_wakeup_fd wants it so
        self._old_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        self._old_handler = signal.signal(signal.SIGINT, self._on_sigint)
        self._watcher = threading.Thread(target=self._watch, name="pynova-ctrl-c", daemon=True)
        self._watcher.start()
        return self

    def _watch(self) -> None:
        while data := os.read(self._read_fd, 64):
            if signal.SIGINT in data:
                with self._lock:
                    if self._kernel is not None:
                        self._kernel.request_stop()

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        kernel = self._kernel
        if kernel is not None and kernel.in_cpu:
            kernel.interrupt()
            return
        raise KeyboardInterrupt

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._watcher is None:
            return
        signal.signal(signal.SIGINT, self._old_handler)  # type: ignore[arg-type]
        signal.set_wakeup_fd(self._old_fd)
        with self._lock:
            self._kernel = None
        os.close(self._write_fd)  # the watcher reads end-of-file and ends
        self._watcher.join(timeout=1.0)
        os.close(self._read_fd)
        self._watcher = None


