"""The executors of low-latency mode: where a keyframe's ``high`` runs (inline, on a parallel
worker, or in slices between frames on the stream's compute thread), and their contracts."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest
import torch

from lowlatseg.runtime.executors import InlineExecutor, ThreadExecutor
from lowlatseg.runtime.sliced import SlicedExecutor


def test_executors_contract() -> None:
    """Every executor returns fn(f_low) through a future, in inference mode, and delivers an
    exception through ``result()``; the parallel one runs fn on its own single-threaded worker,
    the sliced one runs frames (``run``) and slices on its compute thread with its own thread
    count. The caller's thread count is left untouched."""
    caller_threads = torch.get_num_threads()
    f = torch.randn(1, 3, 4, 4)

    def probe(t: torch.Tensor) -> torch.Tensor:
        seen.append((threading.get_ident(), torch.get_num_threads(), torch.is_inference_mode_enabled()))
        return t * 2

    def boom(t: torch.Tensor) -> torch.Tensor:
        raise ValueError("bad keyframe")

    for ex, other_thread, n in ((InlineExecutor(), False, None), (ThreadExecutor(worker_threads=1), True, 1),
                                (SlicedExecutor(threads=1), True, 1)):
        seen: list[tuple[int, int, bool]] = []
        assert torch.equal(ex.wait(ex.submit(probe, f)), f * 2)
        (ident, n_threads, inference), = seen
        assert (ident != threading.get_ident()) == other_thread and inference
        assert n is None or n_threads == n
        with pytest.raises(ValueError, match="bad keyframe"):
            ex.wait(ex.submit(boom, f))
        seen = []
        assert torch.equal(ex.run(probe, f), f * 2)  # a frame's work: where the executor runs it
        assert (seen[0][0] != threading.get_ident()) == isinstance(ex, SlicedExecutor)
        with pytest.raises(ValueError, match="bad keyframe"):
            ex.run(boom, f)  # a frame's error reaches the caller as it is
        ex.close()
        assert torch.get_num_threads() == caller_threads


def test_sliced_executor_runs_high_in_slices_between_frames() -> None:
    """Slices run one after the other in the gaps between frames; a frame waits for at most the
    slice in progress (none here: the caller waits until the job is done before the frame);
    ``wait`` from inside a frame finishes the job at once; ``close`` cancels what is left."""
    order: list[str] = []

    class Sliced:
        def steps(self, t: torch.Tensor):
            for k in range(3):
                order.append(f"slice{k}")
                yield
            return t + 1

    ex = SlicedExecutor(threads=1, max_delay=None)
    fut = ex.submit(Sliced(), torch.zeros(1))  # type: ignore[arg-type]
    assert torch.equal(fut.result(timeout=10), torch.ones(1)) and order == ["slice0", "slice1", "slice2"]
    order.clear()

    def frame_that_needs_it() -> torch.Tensor:
        job = ex.submit(Sliced(), torch.zeros(1))  # type: ignore[arg-type]
        order.append("frame")
        return ex.wait(job)  # inside the frame: the slices run now, on this thread

    assert torch.equal(ex.run(frame_that_needs_it), torch.ones(1))
    assert order == ["frame", "slice0", "slice1", "slice2"]
    ex.close()
    with pytest.raises(RuntimeError, match="closed"):
        ex.submit(Sliced(), torch.zeros(1))  # type: ignore[arg-type]


@pytest.mark.parametrize("max_delay", [1, 2, 3, 6, 10])
@pytest.mark.parametrize("total", [1, 2, 5, 21, 22, 40])
def test_slices_owed_meets_the_bound_with_the_fewest_slices(total: int, max_delay: int) -> None:
    """Saturated (a frame always waiting), a keyframe chosen at frame k is ready for frame
    k + max_delay at the latest, and no frame carries more than the even share of slices."""
    from lowlatseg.runtime.sliced import slices_owed

    done = waited = 0
    per_frame = []
    while done < total:
        waited += 1  # the frame k + waited - 1 was answered; its owed slices run now
        owed = slices_owed(total - done, waited, max_delay)
        per_frame.append(owed)
        done += owed
    assert waited <= max_delay  # features ready for frame k + waited
    assert max(per_frame) <= -(-total // max_delay)  # never more than the even share
    assert slices_owed(0, 1, max_delay) == 1 and slices_owed(5, 1, None) == 1  # unknown count / no bound: one


class _ThreadLog:
    """A stand-in for ``High`` whose slices record the thread they ran on."""

    def __init__(self, n: int, ms: float) -> None:
        self.n, self.ms, self.threads, self.counts = n, ms, [], []

    def steps(self, t: torch.Tensor):
        for _ in range(self.n - 1):
            self._slice()
            yield
        self._slice()
        return t + 1

    def _slice(self) -> None:
        time.sleep(self.ms / 1000)
        self.threads.append(threading.get_ident())
        self.counts.append(torch.get_num_threads())  # this thread's own count


def test_sliced_executor_slices_in_the_time_between_frames() -> None:
    """Frames with time between them (a live stream): every slice runs on the compute thread,
    in the gaps, and every frame has all the threads."""
    ex = SlicedExecutor(threads=2)
    compute = ex.run(threading.get_ident)
    high = _ThreadLog(6, 2)
    time.sleep(0.03)
    fut = ex.run(ex.submit, high, torch.zeros(1))  # submitted from a frame, as the runtime does
    seen = []
    for _ in range(4):
        time.sleep(0.03)  # the stream's next frame comes 30 ms later
        seen.append(ex.run(torch.get_num_threads))
    assert torch.equal(fut.result(timeout=10), torch.ones(1)) and set(high.threads) == {compute}
    assert seen == [2, 2, 2, 2]
    ex.close()


def test_sliced_executor_splits_the_cores_when_frames_come_back_to_back() -> None:
    """No time between frames (fed as fast as they are answered): the keyframe's rest goes to
    the single-threaded helper, the frames go on with half the threads meanwhile and get all of
    them back once it is done."""
    ex = SlicedExecutor(threads=2)
    compute = ex.run(threading.get_ident)
    high = _ThreadLog(12, 10)
    fut = ex.run(ex.submit, high, torch.zeros(1))
    seen = []
    while not fut.done():
        seen.append(ex.run(torch.get_num_threads))
        assert len(seen) < 100_000
    assert torch.equal(fut.result(), torch.ones(1))
    helper = set(high.threads) - {compute}
    assert len(helper) == 1 and high.threads[-1] in helper  # finished on the helper thread
    assert len(seen) > 10 and 1 in seen  # frames kept coming, on one thread while the helper ran
    ex.run(lambda: None)
    assert ex.run(torch.get_num_threads) == 2  # all threads again
    ex.close()


def test_sliced_executor_hands_over_at_once_a_keyframe_chosen_back_to_back(monkeypatch) -> None:
    """A keyframe submitted by a frame that itself came back to back goes to the helper as soon
    as that frame is answered: no slice of it runs on the compute thread, so the next frame
    does not wait for one. The helper stays single-threaded even if another thread sets a
    larger count just before the helper's first operator (PyTorch's lazy per-thread set-up
    would otherwise give it that count: a second OpenMP team, which slows every frame)."""
    from lowlatseg.runtime import sliced

    monkeypatch.setattr(sliced, "SATURATED_GAP_S", 0.05)  # "back to back" with room for a slow CI machine
    caller_threads = torch.get_num_threads()
    ex = SlicedExecutor(threads=2)
    try:
        compute = ex.run(threading.get_ident)
        ex.run(lambda: None)  # this one and the next come back to back
        high = _ThreadLog(6, 5)
        fut = ex.run(ex.submit, high, torch.zeros(1))
        torch.set_num_threads(2)  # while the helper's first slice sleeps
        time.sleep(0.02)
        while not fut.done():
            ex.run(lambda: None)
        assert torch.equal(fut.result(), torch.ones(1))
        assert compute not in high.threads and len(set(high.threads)) == 1  # every slice on the helper
        assert set(high.counts) == {1}
    finally:
        ex.close()
        torch.set_num_threads(caller_threads)


def test_set_thread_count_sticks_in_a_new_thread() -> None:
    """A thread's count set with set_thread_count survives another thread setting another one
    before the first thread computes (torch.set_num_threads alone does not: PyTorch's lazy
    per-thread initialisation copies the last count set by any thread)."""
    from lowlatseg.runtime.executors import set_thread_count

    caller_threads = torch.get_num_threads()
    ready, go, seen = threading.Event(), threading.Event(), []

    def worker() -> None:
        set_thread_count(1)
        ready.set()
        go.wait(10)
        seen.append(torch.get_num_threads())

    t = threading.Thread(target=worker)
    t.start()
    try:
        ready.wait(10)
        torch.set_num_threads(2)
        go.set()
        t.join(10)
        assert seen == [1]
    finally:
        torch.set_num_threads(caller_threads)


def test_sliced_executor_close_ends_every_pending_keyframe() -> None:
    """close() stops after the slice in progress: a started keyframe fails, one not started is
    cancelled; a keyframe cancelled by its owner is skipped; nothing hangs."""
    ex = SlicedExecutor(threads=1)
    dropped_high, long_high, waiting_high = _ThreadLog(3, 1), _ThreadLog(50, 20), _ThreadLog(3, 1)

    def frame() -> tuple[Future, Future, Future]:
        dropped = ex.submit(dropped_high, torch.zeros(1))  # type: ignore[arg-type]
        assert dropped.cancel()  # not started yet: its owner may cancel it
        return dropped, ex.submit(long_high, torch.zeros(1)), ex.submit(waiting_high, torch.zeros(1))  # type: ignore[arg-type]

    dropped, started, waiting = ex.run(frame)
    while not long_high.threads:  # the long job has begun
        time.sleep(0.005)
    ex.close()
    assert dropped.cancelled() and not dropped_high.threads and len(long_high.threads) < 50
    with pytest.raises(RuntimeError, match="closed"):
        started.result(timeout=1)
    assert waiting.cancelled() and not waiting_high.threads
    with pytest.raises(RuntimeError, match="closed"):
        ex.run(lambda: None)


def test_sliced_executor_survives_an_interrupted_frame() -> None:
    """Ctrl-C while the caller waits for a frame: the interrupt reaches the caller, the frame
    already started finishes on the compute thread, and the next frame runs normally."""
    import signal

    # Python's own Ctrl-C handler for the test: a process started in the background by a shell
    # inherits SIGINT ignored, and then no KeyboardInterrupt exists to test
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    ex = SlicedExecutor(threads=1)
    done: list[int] = []
    started, sent = threading.Event(), threading.Event()
    main_thread = threading.main_thread().ident
    assert main_thread is not None

    def interrupt_once_started() -> None:  # no fixed timer: a slow machine must not let the frame end first
        started.wait(10)
        time.sleep(0.05)  # the caller is waiting by now
        signal.pthread_kill(main_thread, signal.SIGINT)  # a real Ctrl-C, delivered to the waiting thread
        sent.set()

    def frame() -> None:
        started.set()
        sent.wait(10)
        time.sleep(0.3)  # still running while the caller takes the interrupt
        done.append(1)

    threading.Thread(target=interrupt_once_started, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            ex.run(frame)
        assert ex.run(lambda: len(done)) == 1  # the interrupted frame finished first, then this one
    finally:
        ex.close()
        signal.signal(signal.SIGINT, previous)
