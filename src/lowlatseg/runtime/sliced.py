"""The sliced executor (``--worker sliced``, the default for live low-latency streams): one
compute thread per stream runs every frame, and a keyframe's ``high`` in slices between them.

The executor protocol, the inline and the parallel executors are in runtime/executors.py; why
one thread owns every core is in its module doc and docs/runtime.md.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import torch

from lowlatseg.defaults import MAX_DELAY_FRAMES
from lowlatseg.nn.splitnet import run_steps
from lowlatseg.runtime.executors import High, set_thread_count
from lowlatseg.runtime.steady import release_openmp_threads

R = TypeVar("R")


def _slices(fn: High, f_low: torch.Tensor) -> Generator[None, None, torch.Tensor]:
    """``fn(f_low)`` as a generator of slices: ``fn.steps`` where it has them (High), else one."""
    steps = getattr(fn, "steps", None)
    if steps is not None:
        return (yield from steps(f_low))
    return fn(f_low)


# A frame posted less than this after the previous frame was answered means the caller feeds
# frames as fast as they are answered (measured gaps: ~0.1 ms fed back to back; several ms when
# segment encodes the overlay in between; tens of ms for a live stream).
SATURATED_GAP_S = 0.001


def slices_owed(remaining: int, frames_waited: int, max_delay: int | None) -> int:
    """How many slices of a pending ``high`` run after a frame when the next frame is already
    waiting. ``remaining``: its slices not run yet (0: not known yet); ``frames_waited``: frames
    answered since it was submitted, this one included (1 after the keyframe's own frame).
    Slices run after each of the frames k .. k + max_delay - 1 of a keyframe chosen at frame k,
    so spreading what remains over the opportunities left makes its features ready for frame
    k + max_delay at the latest. At least one; one when ``max_delay`` is None or the number of
    slices is not known."""
    if max_delay is None or remaining <= 0:
        return 1
    left = max(1, max_delay - frames_waited + 1)
    return max(1, -(-remaining // left))


def _fail(fut: Future, error: BaseException) -> None:
    """Ends a future nobody will complete: cancelled if it never started, else this error."""
    if not fut.cancel() and not fut.done():
        fut.set_exception(error)


class SlicedExecutor:
    """One compute thread for a stream: frames first, a keyframe's ``high`` in slices between
    them (see the module doc).

    ``threads``: the compute thread's torch thread count (the stream's; default: the caller's
    current count). Frames come first: the thread runs slices of a pending ``high`` while no
    frame is waiting, and a frame that arrives waits only for the slice in progress. Three
    regimes, by the time between frames:

    * plenty (a live stream the CPU keeps up with): ``high`` runs in the gaps, on every core;
    * none (a frame posted less than ``SATURATED_GAP_S`` after the previous answer): the rest of
      ``high`` goes to a single-threaded helper and runs beside the frames, which use half the
      threads until it is done (the parallel worker's split, more efficient when the cores
      never rest); a keyframe chosen by such a frame goes to the helper as soon as that frame
      is answered, so the next frame does not first wait for one of its slices;
    * a little (a frame is waiting after some slices, as when ``segment`` encodes the overlay
      between frames): each frame is followed by at least one slice, and by enough of them that
      ``high`` is ready within ``max_delay`` frames of its keyframe (:func:`slices_owed`;
      ``None``: one slice per frame). The number of slices is learnt from the first keyframe
      that completes in slices (one slice per frame until then). A frame that waits for k
      slices pays about 2k ms on 2 cores: the bound trades latency against staleness.

    Before each frame, the OpenMP threads of the *caller's* own team are freed if it has one
    (:func:`~lowlatseg.runtime.steady.release_openmp_threads`; a no-op otherwise), so that the
    compute thread's team is the only one in the stream's way; PyTorch starts them again if the
    caller computes on several threads between frames.

    A ``run`` interrupted in the caller (Ctrl-C) withdraws its frame if the thread has not
    started it; one already started finishes on the thread and its result is dropped. If the
    thread ever stops, every frame and keyframe still waiting fails with an error instead of
    hanging its caller.
    """

    def __init__(self, threads: int | None = None, *, max_delay: int | None = MAX_DELAY_FRAMES) -> None:
        self.threads = threads or torch.get_num_threads()
        if self.threads < 1 or (max_delay is not None and max_delay < 1):
            raise ValueError(f"threads ({self.threads}) and max_delay ({max_delay}) must be at least 1")
        self.max_delay = max_delay
        self._cv = threading.Condition()
        self._frame: tuple[Callable[..., Any], tuple[Any, ...], Future] | None = None
        self._jobs: deque[tuple[Generator[None, None, torch.Tensor], Future]] = deque()
        self._owed = 0  # slices to run before the next frame
        self._slices_per_job = 0  # learnt from the first job that completes (every keyframe has as many)
        self._done_slices = 0  # slices of the oldest job run so far
        self._frames_waited = 0  # frames answered since the oldest job was submitted
        self._closed = False
        self._handed: Future | None = None  # the oldest job's rest, running on the helper (saturated)
        self._last_done = 0.0  # perf_counter() when the last frame's result was set
        self._posted = 0.0  # perf_counter() when the waiting frame was posted
        self._own_threads = 0  # the compute thread's torch thread count, as it last set it
        self._helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lowlatseg-high")
        self._helper.submit(set_thread_count, 1).result()  # single-threaded: no second OpenMP team
        self._thread = threading.Thread(target=self._loop, name="lowlatseg-compute", daemon=True)
        self._thread.start()
        _open_executors.add(self)

    def _on_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def run(self, fn: Callable[..., R], *args: Any) -> R:
        """``fn(*args)`` on the compute thread, after the slice in progress; re-raises its error."""
        if self._on_thread():
            return fn(*args)
        release_openmp_threads()  # the caller's team, if its own PyTorch work started one since
        fut: Future = Future()
        with self._cv:
            if self._closed:
                raise RuntimeError("the executor is closed")
            if self._frame is not None:
                raise RuntimeError("one frame at a time: a stream runtime is not shared between threads")
            self._frame = (fn, args, fut)
            self._posted = time.perf_counter()
            self._cv.notify()
        try:
            return fut.result()
        except BaseException:
            with self._cv:
                if self._frame is not None and self._frame[2] is fut:  # interrupted before it started
                    self._frame = None
            raise

    def submit(self, fn: High, f_low: torch.Tensor) -> Future:
        fut: Future = Future()
        with self._cv:
            if self._closed:
                raise RuntimeError("the executor is closed")
            self._jobs.append((_slices(fn, f_low), fut))
            self._cv.notify()
        return fut

    def wait(self, future: Future) -> torch.Tensor:
        """The result of a submitted ``high``; from inside ``run`` (a frame that needs it now,
        as with ``delay_frames``), its remaining slices run at once."""
        if self._on_thread():
            while not future.done() and self._handed is None:
                self._run_slice()
        return future.result()

    def _run_slice(self) -> None:
        """The next slice of the oldest job (on the compute thread only)."""
        with self._cv:
            job, fut = self._jobs[0]
            first = self._done_slices == 0
        done, completed = True, False
        try:
            if first and not fut.set_running_or_notify_cancel():
                return  # cancelled by its owner before it started: drop it
            try:
                next(job)
                done = False
            except StopIteration as stop:
                fut.set_result(stop.value)
                completed = True
            except BaseException as e:  # surfaced by future.result() in the runtime
                fut.set_exception(e)
        finally:
            with self._cv:
                self._done_slices += 1
                if done:
                    self._jobs.popleft()
                    if completed and not self._slices_per_job:
                        self._slices_per_job = self._done_slices
                    self._done_slices = self._frames_waited = 0
                self._owed = max(0, self._owed - 1) if self._jobs else 0

    def _loop(self) -> None:
        try:
            set_thread_count(self.threads)
            self._own_threads = self.threads
            with torch.inference_mode():
                self._serve()
        finally:  # stopped (closed, or an error of the thread's own): nobody may wait forever
            with self._cv:
                why = "the runtime was closed" if self._closed else "the stream's compute thread stopped"
                self._closed = True
                self._fail_waiting(RuntimeError(why))

    def _serve(self) -> None:
        half = max(1, self.threads // 2)
        while True:
            with self._cv:
                while self._frame is None and (not self._jobs or self._handed is not None) and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                sliceable = bool(self._jobs) and self._handed is None
                frame, back_to_back = None, False
                if self._frame is not None:
                    back_to_back = self._posted - self._last_done < SATURATED_GAP_S
                    if sliceable and back_to_back:
                        self._hand_over()  # no time between frames: split the cores instead (owed slices too)
                        frame = self._frame
                    elif self._owed == 0 or not sliceable:
                        frame = self._frame
                if frame is not None:
                    self._frame = None
            if frame is None:
                self._set_threads(self.threads)
                self._run_slice()
                continue
            self._set_threads(half if self._handed is not None else self.threads)
            fn, args, fut = frame
            try:
                fut.set_result(fn(*args))
            except BaseException as e:  # re-raised in the caller by run()
                fut.set_exception(e)
            with self._cv:
                self._last_done = time.perf_counter()
                if self._jobs and self._handed is None and back_to_back:
                    # a keyframe submitted by a frame that came back to back: the next frame will
                    # too, so the keyframe goes to the helper now, not after a slice it would wait
                    # for (2-7 ms measured on the frame after each keyframe, fed as fast as possible)
                    self._hand_over()
                elif self._jobs and self._handed is None:
                    self._frames_waited += 1
                    remaining = self._slices_per_job - self._done_slices if self._slices_per_job else 0
                    self._owed = slices_owed(remaining, self._frames_waited, self.max_delay)
                else:
                    self._owed = 0

    def _set_threads(self, n: int) -> None:
        """The compute thread's own count (kept here: ``torch.get_num_threads()`` may report a
        count another thread set)."""
        if self._own_threads != n:
            set_thread_count(n)
            self._own_threads = n

    def _hand_over(self) -> None:
        """(Under the lock.) The rest of the oldest job goes to the single-threaded helper, to run
        at the same time as the frames (which then use half the threads): frames come faster than
        they are answered, so there is no time between them for slices."""
        job, fut = self._jobs[0]
        self._owed = 0

        def rest() -> None:
            with torch.inference_mode():
                try:
                    if self._done_slices == 0 and not fut.set_running_or_notify_cancel():
                        return
                    try:
                        value = run_steps(job)
                    except BaseException as e:  # surfaced by future.result() in the runtime
                        if not fut.done():
                            fut.set_exception(e)
                    else:
                        if not fut.done():  # (failed already if the executor was closed meanwhile)
                            fut.set_result(value)
                finally:
                    with self._cv:
                        if self._jobs and self._jobs[0][1] is fut:
                            self._jobs.popleft()
                        self._handed = None
                        self._done_slices = self._frames_waited = 0
                        self._cv.notify_all()

        self._handed = self._helper.submit(rest)

    def _fail_waiting(self, error: BaseException) -> None:
        """(Under the lock.) Ends every job and the posted frame: nothing will run them."""
        for _, fut in self._jobs:
            _fail(fut, error)
        self._jobs.clear()
        if self._frame is not None:
            _fail(self._frame[2], error)
            self._frame = None

    def close(self) -> None:
        """Stops the thread after the frame or slice in progress; keyframes still pending are
        cancelled (or fail, if they had started)."""
        with self._cv:
            self._closed = True
            self._cv.notify()
        if not self._on_thread():
            self._thread.join()
        self._helper.shutdown(wait=True)  # a handed-over keyframe finishes first
        with self._cv:
            self._fail_waiting(RuntimeError("the runtime was closed"))


# Executors still open when the interpreter exits (a runtime never closed) are closed first: a
# compute thread left inside PyTorch while the interpreter finalises aborts the process
# ("terminate called without an active exception", exit status 134). atexit runs while daemon
# threads still run, so close() can let the slice in progress finish.
_open_executors: weakref.WeakSet[SlicedExecutor] = weakref.WeakSet()


@atexit.register
def _close_open_executors() -> None:
    for ex in list(_open_executors):
        ex.close()
