"""Read, compute and write on three threads at once, in order, with bounded queues between them.

``segment`` decodes and resizes frames on a reader thread, runs the runtime on the calling thread
(the main thread: Ctrl-C and SIGTERM arrive there) and blends, encodes and saves labels on a
writer thread. PyAV's codecs and OpenCV's resize and blending release the GIL, so the three
overlap; each queue holds a few items, so memory stays flat whatever the speeds.

Every item is written, in the order the source gave it, unless something fails. Whatever stops
the run (an exception in any of the three, Ctrl-C), the reader stops at its next item, the
writer writes every item computed before the stop (unless the writer itself failed), both
threads are joined, and only then is the first exception raised in the calling thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_END = object()  # the sentinel that closes a queue: nothing comes after it
POLL_S = 0.05  # how often a blocked thread looks up whether the run stopped


class _Failed:
    """An exception raised by the source, on its way to the calling thread."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Stage(threading.Thread):
    """A daemon thread that keeps the exception its work ended with (``error``)."""

    def __init__(self, name: str, work: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self._work = work
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._work()
        except BaseException as e:  # handed to the calling thread, which raises it
            self.error = e


class Pipeline(Generic[T, R]):
    """``write(compute(item))`` for every ``item`` of ``source``, in order (see the module doc).

    ``source`` is iterated on a reader thread (a generator can decode and resize there),
    ``compute`` runs on the thread that calls :meth:`run`, ``write`` on a writer thread.
    ``depth``: the most items waiting between two stages.
    """

    def __init__(self, source: Iterable[T], compute: Callable[[T], R], write: Callable[[R], None], *,
                 depth: int = 3, name: str = "lowlatseg") -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self._source, self._compute, self._write = source, compute, write
        self._in: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._out: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()  # set by the calling thread: the reader reads no further
        self._closed = threading.Event()  # set by the calling thread: nothing more goes to the writer
        self._abandon = threading.Event()  # a second interrupt while finishing: the writer drops what waits
        self.reader = _Stage(f"{name}-reader", self._read)
        self.writer = _Stage(f"{name}-writer", self._drain)

    def run(self) -> None:
        """Runs to the end of ``source``; raises the first exception of any stage, once both threads are done."""
        try:
            self.reader.start()
            self.writer.start()
            while True:
                item = self._next()
                if item is _END:
                    break
                self._check_writer()
                self._send(self._compute(item))
        finally:
            self._finish()
        self._check_writer()

    # ------------------------------------------------------------ the reader thread
    def _read(self) -> None:
        items = iter(self._source)
        try:
            for item in items:
                if not self._offer(item):
                    return  # stopped: nobody takes any more items
        except BaseException as e:
            self._offer(_Failed(e))
        else:
            self._offer(_END)
        finally:
            close = getattr(items, "close", None)
            if close is not None:  # a generator stopped mid-way: its cleanup runs here, before the caller's
                close()

    def _offer(self, item: object) -> bool:
        """Puts ``item`` in the input queue unless the run stops first; False if it stopped."""
        while not self._stop.is_set():
            try:
                self._in.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    # ------------------------------------------------------------ the writer thread
    def _drain(self) -> None:
        while True:
            try:
                item = self._out.get(timeout=POLL_S)
            except queue.Empty:
                if self._closed.is_set():
                    return  # the calling thread is done and nothing waits
                continue
            if item is _END:
                return
            if not self._abandon.is_set():
                self._write(item)

    # ------------------------------------------------------------ the calling thread
    def _next(self) -> Any:
        while True:
            try:
                item = self._in.get(timeout=POLL_S)
            except queue.Empty:
                self._check_writer()  # a writer that failed stops the run without waiting for the reader
                if not self.reader.is_alive() and self._in.empty():
                    raise RuntimeError("the reader thread ended without closing its queue") from self.reader.error
                continue
            if isinstance(item, _Failed):
                raise item.error
            return item

    def _send(self, result: R) -> None:
        while True:
            try:
                self._out.put(result, timeout=POLL_S)
                return
            except queue.Full:
                self._check_writer()

    def _check_writer(self) -> None:
        if self.writer.error is not None:
            raise self.writer.error
        if self.writer.ident is not None and not self.writer.is_alive() and not self._closed.is_set():
            raise RuntimeError("the writer thread ended before the end of the input")

    def _finish(self) -> None:
        """Stops the reader, lets the writer write what was computed, joins both threads."""
        self._stop.set()
        while True:  # free the queue's slots (and memory); the reader stops at its next item
            try:
                self._in.get_nowait()
            except queue.Empty:
                break
        self._closed.set()
        try:
            self._out.put_nowait(_END)
        except queue.Full:
            pass  # the writer ends when it finds the queue empty and closed
        _join(self.reader, self._abandon.set)
        _join(self.writer, self._abandon.set)


def _join(thread: threading.Thread, on_interrupt: Callable[[], None]) -> None:
    """Waits for ``thread``; a second Ctrl-C or SIGTERM meanwhile calls ``on_interrupt`` and waits on
    (the outputs are finished whatever happens; a thread's wait is bounded: a stalled input ends
    at its read timeout, the writer after the item in progress)."""
    if thread.ident is None:
        return
    while thread.is_alive():
        try:
            thread.join(POLL_S)
        except KeyboardInterrupt:
            on_interrupt()
