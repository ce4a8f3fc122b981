"""Where a keyframe's ``high`` runs while the low-latency runtime answers frames.

* :class:`InlineExecutor`: at once, on the caller's thread (the sequential twin, evaluation).
* :class:`~lowlatseg.runtime.sliced.SlicedExecutor` (``sliced``, the default for live streams,
  in runtime/sliced.py): one compute thread owns
  every core the stream may use and runs all of its work: each frame's main path, and a
  keyframe's ``high`` in slices of about one residual block (:meth:`~lowlatseg.nn.splitnet.High.steps`)
  *between* frames. A frame never shares the cores with ``high``: it runs on all of them and
  waits at most for the slice in progress when it arrives (~2 ms). When frames come back to
  back (no time between them), the rest of ``high`` runs beside them on a single-threaded
  helper instead, the frames on half the threads, as the parallel worker does.
* :class:`ThreadExecutor` (``parallel``): ``high`` on a worker thread *at the same time* as the
  frames, the cores split between them (the worker 1, the main path the rest while a keyframe
  is in flight). On 2 cores every frame answered while ``high`` runs gets one core.

Threads, not processes: PyTorch releases the GIL inside its operators, so a thread's operators
really run in parallel with other Python threads; there is no copy of the features between
processes, and errors arrive as ordinary exceptions. Each thread's operators run on its own
OpenMP team, sized by the count that thread last set with ``torch.set_num_threads``; with
libgomp, more OpenMP threads in the process than cores slow every team (docs/runtime.md), which
is why the parallel worker runs on one thread and the sliced executor's compute thread is the
only team of the stream.

The protocol: ``run(fn, *args)`` runs a frame's work (``fn(*args)``) where the executor wants it
and returns its result; ``submit(high, f_low)`` starts a keyframe's ``high`` and returns a
future of f_high; ``wait(future)`` blocks until it is done and returns it (also from inside
``run``); ``close()``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import torch

R = TypeVar("R")
High = Callable[[torch.Tensor], torch.Tensor]


class KeyExecutor(Protocol):
    def run(self, fn: Callable[..., R], *args: Any) -> R: ...

    def submit(self, fn: High, f_low: torch.Tensor) -> Future: ...

    def wait(self, future: Future) -> torch.Tensor: ...

    def close(self) -> None: ...


def set_thread_count(n: int) -> None:
    """Sets the *calling* thread's torch (OpenMP) thread count so that it sticks. PyTorch sets a
    thread's count lazily, on its first parallel operator, to the count last set by *any*
    thread, overwriting whatever the thread set before that (torch 2.13, tested): a worker that
    set 1 and first computed while another thread had just set 2 ran ``high`` on a team of two
    for the rest of the stream, and every frame paid for it (libgomp throttling, docs/runtime.md).
    Reading the count first runs that initialisation."""
    torch.get_num_threads()
    torch.set_num_threads(n)


class InlineExecutor:
    """Runs ``high`` at once on the caller's thread; the result is ready on return."""

    def run(self, fn: Callable[..., R], *args: Any) -> R:
        return fn(*args)

    def wait(self, future: Future) -> torch.Tensor:
        return future.result()

    def submit(self, fn: Callable[[torch.Tensor], torch.Tensor], f_low: torch.Tensor) -> Future:
        fut: Future = Future()
        try:
            with torch.inference_mode():
                fut.set_result(fn(f_low))
        except Exception as e:  # surfaced by future.result(), like the threaded executor
            fut.set_exception(e)
        return fut

    def close(self) -> None:
        pass


class ThreadExecutor:
    """Runs ``high`` on one background thread (one keyframe in flight at a time).

    ``worker_threads``: OpenMP threads of the worker's own parallel regions (set in the worker
    thread). 1 by default: a worker team of several threads leaves idle OpenMP threads
    spin-waiting after every keyframe, and on a 2-core machine they slowed the main path from
    16 to 25 ms per frame for as long as the stream ran.
    """

    def __init__(self, worker_threads: int = 1) -> None:
        self.worker_threads = worker_threads
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lowlatseg-high")
        # start the thread and set its thread count now, not on the first keyframe (that frame
        # paid ~10 ms for it)
        self._pool.submit(set_thread_count, worker_threads).result()

    def run(self, fn: Callable[..., R], *args: Any) -> R:
        return fn(*args)

    def wait(self, future: Future) -> torch.Tensor:
        return future.result()

    def submit(self, fn: Callable[[torch.Tensor], torch.Tensor], f_low: torch.Tensor) -> Future:
        def run() -> torch.Tensor:
            set_thread_count(self.worker_threads)
            with torch.inference_mode():
                return fn(f_low)

        return self._pool.submit(run)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
