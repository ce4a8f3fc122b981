"""Where a keyframe's ``high`` runs: inline (sequential) or on a worker thread (parallel).

Why a thread and not a process: PyTorch releases the GIL inside its operators, so ``high`` on
a worker thread and the main path (``low``, propagation, head) run on separate cores at the
same time, with no copy of the features between processes and with worker errors arriving as
ordinary exceptions. Each thread's operators run on its own OpenMP team, sized by the count that
thread last set with ``torch.set_num_threads``: the worker sets 1 for itself, and the low-latency
runtime switches the main thread's between all threads (no keyframe in flight) and half (while
one is), so the two together never use more threads than cores (see docs/runtime.md).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

import torch


class KeyExecutor(Protocol):
    def submit(self, fn: Callable[[torch.Tensor], torch.Tensor], f_low: torch.Tensor) -> Future: ...

    def close(self) -> None: ...


class InlineExecutor:
    """Runs ``high`` at once on the caller's thread; the result is ready on return."""

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
        self._pool.submit(torch.set_num_threads, worker_threads).result()

    def submit(self, fn: Callable[[torch.Tensor], torch.Tensor], f_low: torch.Tensor) -> Future:
        def run() -> torch.Tensor:
            torch.set_num_threads(self.worker_threads)
            with torch.inference_mode():
                return fn(f_low)

        return self._pool.submit(run)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
