"""The online runtime's contracts: order, keyframes, low-latency equivalence, worker errors."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
import torch

from lowlatseg.checkpoint import load_model
from lowlatseg.errors import UserError
from lowlatseg.runtime import StreamRuntime, WorkerError
from lowlatseg.runtime.build import build_runtime
from lowlatseg.runtime.config import Inline, Parallel, RuntimeConfig, Sliced, executor_spec
from lowlatseg.runtime.executors import InlineExecutor, ThreadExecutor
from lowlatseg.runtime.sliced import SlicedExecutor
from lowlatseg.runtime.frames import prepare
from lowlatseg.scheduling.calibrate import keyframe_fraction, threshold_for_rate
from lowlatseg.scheduling.policies import Fixed
from lowlatseg.scheduling.predictor import DeviationConfig, DeviationPredictor

SIZE = (48, 64)


def _frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)
    return [np.ascontiguousarray(np.roll(base, i * 2, axis=1)[:, :64]) for i in range(n)]


@pytest.fixture
def model(tiny_weights: Path):
    return load_model(tiny_weights)


def _run(rt: StreamRuntime, frames: list[np.ndarray]):
    with rt:
        return [rt.step(f) for f in frames]


def test_per_frame_mode_is_the_network(model, tiny_prop: Path) -> None:
    frames = _frames(4)
    res = _run(build_runtime(model, RuntimeConfig(mode="per-frame", propagation=tiny_prop, size=SIZE)), frames)
    for f, r in zip(frames, res):
        x = torch.from_numpy(f).permute(2, 0, 1).float().div(255)[None]
        with torch.inference_mode():
            ref = model(x).argmax(1)[0].numpy()
        assert np.array_equal(r.labels, ref)
        assert r.is_keyframe and r.keyframe_index == r.index
    assert all(len(np.unique(r.labels)) > 1 for r in res)  # the comparison is not of constant maps


def test_fixed_schedule_and_order(model, tiny_prop: Path) -> None:
    res = _run(build_runtime(model, RuntimeConfig(mode="fixed", propagation=tiny_prop, interval=3, size=SIZE)), _frames(8))
    assert [r.index for r in res] == list(range(8))  # nothing lost, duplicated or reordered
    assert [r.index for r in res if r.is_keyframe] == [0, 3, 6]
    assert [r.keyframe_index for r in res] == [0, 0, 0, 3, 3, 3, 6, 6]


@pytest.mark.parametrize("worker", ["sliced", "parallel"])
@pytest.mark.parametrize("delay", [1, 2, 4])
def test_low_latency_sequential_equals_parallel(model, tiny_prop: Path, delay: int, worker: str) -> None:
    frames = _frames(12)
    seq = _run(build_runtime(model, RuntimeConfig(mode="low-latency", propagation=tiny_prop, interval=3, size=SIZE, executor=Inline(delay))), frames)
    par = _run(build_runtime(model, RuntimeConfig(mode="low-latency", propagation=tiny_prop, interval=3, size=SIZE, executor=(Sliced(delay_frames=delay) if worker == 'sliced' else Parallel(delay_frames=delay)))), frames)
    assert isinstance(par[0], type(seq[0]))
    for a, b in zip(seq, par):
        assert (a.index, a.is_keyframe, a.keyframe_index) == (b.index, b.is_keyframe, b.keyframe_index)
        assert np.array_equal(a.labels, b.labels)
    # the comparison can fail: labels depend on which keyframe a frame was propagated from
    per_frame = _run(build_runtime(model, RuntimeConfig(mode="per-frame", propagation=tiny_prop, size=SIZE)), frames)
    propagated = [i for i, r in enumerate(seq) if r.keyframe_index != i]
    assert propagated and any(not np.array_equal(seq[i].labels, per_frame[i].labels) for i in propagated)


def test_low_latency_never_answers_with_its_own_fresh_keyframe(model, tiny_prop: Path) -> None:
    res = _run(build_runtime(model, RuntimeConfig(mode="low-latency", propagation=tiny_prop, interval=3, size=SIZE, executor=Inline(1))), _frames(10))
    chosen = [r.index for r in res if r.is_keyframe]
    assert chosen == [0, 3, 6, 9]
    for r in res[1:]:
        assert r.keyframe_index < r.index  # propagated: never waits for high on its own frame
    assert [r.keyframe_index for r in res] == [0, 0, 0, 0, 3, 3, 3, 6, 6, 6]


@pytest.mark.parametrize("worker", ["sliced", "parallel"])
def test_live_parallel_mode_runs_and_keeps_order(model, tiny_prop: Path, worker: str) -> None:
    res = _run(build_runtime(model, RuntimeConfig(mode="low-latency", propagation=tiny_prop, interval=2, size=SIZE, executor=executor_spec(worker))), _frames(10))
    assert [r.index for r in res] == list(range(10))
    assert all(r.keyframe_index <= r.index for r in res)


def test_worker_crash_surfaces_in_the_caller(model, tiny_prop: Path) -> None:
    rt = build_runtime(model, RuntimeConfig(mode="low-latency", propagation=tiny_prop, interval=2, size=SIZE, executor=Sliced(delay_frames=1)))
    calls = {"n": 0}

    def flaky(module: torch.nn.Module, inputs: object, output: torch.Tensor) -> None:
        calls["n"] += 1
        if calls["n"] > 1:  # the first keyframe (frame 0, inline) works; the worker's fails
            raise RuntimeError("simulated worker failure")

    # a block inside high: reached by high's forward (the inline first keyframe) and by its
    # slices (the worker's)
    handle = rt.model.high.s16[0].register_forward_hook(flaky)
    frames = _frames(6)
    with pytest.raises(WorkerError, match="failed on frame 2: RuntimeError: simulated worker failure"):
        for f in frames:
            rt.step(f)
    handle.remove()
    rt.close()


def _state_tensor_bytes(obj: object, seen: set[int] | None = None) -> int:
    """Bytes of every tensor reachable from a runtime's state (dataclasses, dicts, futures)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, Future):
        return _state_tensor_bytes(obj.result(), seen) if obj.done() and not obj.exception() else 0
    if isinstance(obj, dict):
        return sum(_state_tensor_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_state_tensor_bytes(v, seen) for v in obj)
    if hasattr(obj, "__dataclass_fields__"):
        return sum(_state_tensor_bytes(getattr(obj, f), seen) for f in obj.__dataclass_fields__)
    return 0


@pytest.mark.parametrize("parallel", [False, True])
def test_state_stays_small_over_a_long_stream(model, tiny_prop: Path, parallel: bool) -> None:
    """What the runtime holds does not grow with the stream: after 20 and after 60 frames it holds
    the same bytes of tensors (one keyframe, at most one pending), and the keyframe is recent."""
    rt = build_runtime(model, RuntimeConfig(mode="low-latency", propagation=tiny_prop, interval=4, size=SIZE, executor=(Sliced(delay_frames=2) if parallel else Inline(2))))
    frames = _frames(60)
    held = []
    for i, f in enumerate(frames):
        rt.step(f)
        if i + 1 in (20, 60):
            if rt.state.pending is not None:
                rt.state.pending.future.result()  # count the pending keyframe's features too
            held.append(_state_tensor_bytes(rt.state))
    st = rt.state
    assert st.index == 60 and st.key is not None and st.key.index >= 60 - 4 - 2
    assert held[0] == held[1] > 0
    rt.close()
    assert rt.state.index == 0 and rt.state.key is None and _state_tensor_bytes(rt.state) == 0


def test_bad_threshold_and_interval(model, tiny_prop: Path, tiny_sched: Path) -> None:
    with pytest.raises(UserError, match="outside \\[0, 1\\]"):
        build_runtime(model, RuntimeConfig(mode="adaptive", propagation=tiny_prop, scheduler=tiny_sched, threshold=1.5))
    with pytest.raises(UserError, match="at least 1"):
        build_runtime(model, RuntimeConfig(mode="fixed", propagation=tiny_prop, interval=0))
    with pytest.raises(UserError, match="unknown mode"):
        build_runtime(model, RuntimeConfig(mode="turbo", propagation=tiny_prop))
    with pytest.raises(UserError, match="^budget -0.1 is not valid"):  # the library names its parameter
        build_runtime(model, RuntimeConfig(mode="adaptive", propagation=tiny_prop, scheduler=tiny_sched, budget=-0.1))
    with pytest.raises(UserError, match="not both"):
        build_runtime(model, RuntimeConfig(mode="adaptive", propagation=tiny_prop, scheduler=tiny_sched, threshold=0.1, budget=0.1))


def test_accumulated_rule_sums_deviations_since_the_keyframe(model, tiny_prop: Path, tiny_sched: Path) -> None:
    """With budget B, a keyframe comes when the predicted deviations summed since the last one pass B;
    the runtime's replayed choices match a hand replay of the reported deviations."""
    frames = _frames(12)
    free = _run(build_runtime(model, RuntimeConfig(mode="adaptive", propagation=tiny_prop, scheduler=tiny_sched, threshold=1.0, size=SIZE)), frames)
    devs = [r.deviation for r in free[1:]]
    assert all(d is not None and 0 < d < 1 for d in devs)
    budget = 2.5 * float(np.mean(devs))  # a keyframe about every 3 frames
    res = _run(build_runtime(model, RuntimeConfig(mode="adaptive", propagation=tiny_prop, scheduler=tiny_sched, budget=budget, size=SIZE)), frames)
    acc, want = 0.0, [True]
    for r in res[1:]:
        assert r.deviation is not None
        acc += r.deviation
        want.append(acc > budget)
        acc = 0.0 if want[-1] else acc
    got = [r.is_keyframe for r in res]
    assert got == want and 2 <= sum(got) <= 8
    with torch.inference_mode():
        f_lows = [model.low(prepare(f, SIZE)) for f in frames]
    pred = build_runtime(model, RuntimeConfig(mode="adaptive", propagation=tiny_prop, scheduler=tiny_sched, budget=budget)).policy.predictor
    assert keyframe_fraction(pred, f_lows, budget, rule="accumulated") == pytest.approx(sum(got) / len(got))


def test_adaptive_mode_threshold_extremes(model, tiny_prop: Path, tiny_sched: Path) -> None:
    frames = _frames(6)
    every = _run(build_runtime(model, RuntimeConfig(mode="adaptive", propagation=tiny_prop, scheduler=tiny_sched, threshold=0.0, size=SIZE)), frames)
    never = _run(build_runtime(model, RuntimeConfig(mode="adaptive", propagation=tiny_prop, scheduler=tiny_sched, threshold=1.0, size=SIZE)), frames)
    assert all(r.is_keyframe for r in every)
    assert [r.is_keyframe for r in never] == [True] + [False] * 5
    assert all(r.deviation is not None for r in never[1:])


def test_threshold_calibration_hits_rate() -> None:
    torch.manual_seed(0)
    pred = DeviationPredictor(DeviationConfig(low_ch=4)).eval()
    f_lows = [torch.randn(1, 4, 6, 8) * (1 + i % 3) for i in range(30)]
    thr = threshold_for_rate(pred, f_lows, 0.5)
    assert 0 <= thr <= 1
    assert keyframe_fraction(pred, f_lows, thr) == pytest.approx(0.5, abs=0.1)
    # low-latency replay: no decisions while a keyframe is pending (2 frames), so at most every other frame
    assert keyframe_fraction(pred, f_lows, 0.0, delay_frames=2) == pytest.approx(16 / 30)  # frames 0, 1, 3, 5, ..., 29
    assert keyframe_fraction(pred, [f_lows[:10], f_lows[10:]], 1.0) == pytest.approx(2 / 30)  # one key per clip
    lo, hi = keyframe_fraction(pred, f_lows, 0.0), keyframe_fraction(pred, f_lows, 1.0)
    assert lo == 1.0 and hi == pytest.approx(1 / 30)
    budget = threshold_for_rate(pred, f_lows, 0.25, rule="accumulated")
    assert keyframe_fraction(pred, f_lows, budget, rule="accumulated") == pytest.approx(0.25, abs=0.1)


def test_fixed_policy_rejects_bad_interval() -> None:
    with pytest.raises(UserError):
        Fixed(0)


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


def test_sequential_twin_defaults_to_the_measured_delay(model, tiny_prop: Path) -> None:
    from lowlatseg.defaults import DEFAULT_DELAY_FRAMES

    rt = build_runtime(model, RuntimeConfig(mode="low-latency", propagation=tiny_prop, interval=3, size=SIZE, executor=Inline()))
    res = _run(rt, _frames(12))
    assert rt.delay_frames == DEFAULT_DELAY_FRAMES
    # every keyframe chosen after the first answers frames exactly DEFAULT_DELAY_FRAMES later
    firsts = {r.keyframe_index: r.index for r in reversed(res)}
    assert [firsts[r.index] - r.index for r in res if r.is_keyframe and r.index > 0 and r.index in firsts] == [DEFAULT_DELAY_FRAMES] * 3


@pytest.mark.parametrize("size", [None, 48])
def test_frames_of_another_size_keep_the_streams_network_size(model, tiny_prop: Path, size: int | None) -> None:
    """The first frame fixes the network size (also with a height-only or native size spec);
    a later frame of another size or aspect is resized to it instead of breaking propagation."""
    frames = _frames(6)
    other = [np.ascontiguousarray(np.resize(f, (60, 100, 3))) for f in _frames(4)]
    for mode in ("fixed", "low-latency"):
        rt = build_runtime(model, RuntimeConfig(mode=mode, propagation=tiny_prop, interval=2, size=size, executor=Sliced(delay_frames=1)))
        res = _run(rt, frames + other)
        assert {r.labels.shape for r in res} == {(48, 64)}
        assert [r.index for r in res] == list(range(10))


def test_keyframe_high_starts_after_the_frame_is_answered(model, tiny_prop: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker gets a new keyframe's high only once that frame's labels exist, so the frame
    itself is answered with every core; the frames after it share the cores with the worker."""
    import lowlatseg.runtime.stream as stream

    labelled = []
    real = stream.upsampled_labels
    monkeypatch.setattr(stream, "upsampled_labels", lambda *a, **k: (labelled.append(1), real(*a, **k))[1])
    rt = build_runtime(model, RuntimeConfig(mode="low-latency", propagation=tiny_prop, interval=3, size=SIZE, executor=Sliced(delay_frames=1)))
    submitted = []
    submit = rt.executor.submit
    rt.executor.submit = lambda fn, f_low: (submitted.append((rt.state.index, len(labelled))), submit(fn, f_low))[1]
    res = _run(rt, _frames(10))
    keys = [r.index for r in res if r.is_keyframe and r.index > 0]
    assert keys and [i for i, _ in submitted] == keys
    assert all(n == i + 1 for i, n in submitted)  # frames 0..i all labelled when frame i's high is handed over


def test_a_rejected_frame_changes_nothing(model, tiny_prop: Path) -> None:
    """A frame the runtime rejects (wrong layout) fixes no network size: later frames run as if
    it never came."""
    rt = build_runtime(model, RuntimeConfig(mode="fixed", propagation=tiny_prop, interval=2, size=None))
    with pytest.raises(UserError, match="H x W x 3 uint8"):
        rt.step(np.zeros((3, 48, 64), np.uint8))
    res = _run(rt, _frames(3))
    assert [r.labels.shape for r in res] == [(48, 64)] * 3 and [r.index for r in res] == [0, 1, 2]


def test_a_keyframe_survives_a_failure_before_its_submission(model, tiny_prop: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If answering a chosen frame fails before its high is handed over, nothing records it as
    chosen: the policy chooses again on the next frame."""
    import lowlatseg.runtime.stream as stream

    real, calls = stream.upsampled_labels, {"n": 0}

    def fail_on_frame_3(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("simulated")
        return real(*a, **k)

    monkeypatch.setattr(stream, "upsampled_labels", fail_on_frame_3)
    rt = build_runtime(model, RuntimeConfig(mode="low-latency", propagation=tiny_prop, interval=3, size=SIZE, executor=Inline(1)))
    frames = _frames(8)
    out = [rt.step(f) for f in frames[:3]]
    with pytest.raises(RuntimeError, match="simulated"):
        rt.step(frames[3])
    out += [rt.step(f) for f in frames[4:]]
    # the failed step numbered nothing: the next frame is step 3 again, and chosen again
    assert [r.index for r in out] == list(range(7))
    assert [r.index for r in out if r.is_keyframe] == [0, 3, 6]
    assert out[4].keyframe_index == 3  # its features one frame late, as always
    rt.close()


def test_a_process_exits_cleanly_with_a_keyframe_in_flight(tmp_path: Path) -> None:
    """A program that never closes its runtime and ends while a keyframe's high is running must
    exit normally: a compute thread left inside PyTorch while the interpreter finalises aborts
    the process (status 134, "terminate called without an active exception")."""
    import subprocess
    import sys

    script = tmp_path / "leave.py"
    script.write_text(
        "import time, torch\n"
        "from lowlatseg.runtime.sliced import SlicedExecutor\n"
        "class Heavy:\n"
        "    def steps(self, t):\n"
        "        for _ in range(50):\n"
        "            for _ in range(20):\n"
        "                torch.randn(256, 256) @ torch.randn(256, 256)\n"
        "            yield\n"
        "        return t\n"
        "ex = SlicedExecutor(threads=2)\n"
        "ex.run(ex.submit, Heavy(), torch.zeros(1))\n"
        "time.sleep(0.05)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]


def test_the_executor_spec_chooses_where_high_runs(model, tiny_prop: Path) -> None:
    """RuntimeConfig's executor spec decides low-latency's executor and delay; the other modes run
    their keyframes inline whatever it says; a bad spec names its parameter."""
    from lowlatseg.errors import ParameterError

    def built(mode: str, spec: object) -> StreamRuntime:
        return build_runtime(model, RuntimeConfig(mode=mode, propagation=tiny_prop, interval=2, size=SIZE, threads=2,
                                                  executor=spec))  # type: ignore[arg-type]

    cases = [(Inline(3), InlineExecutor, 3, None), (Sliced(max_delay=4), SlicedExecutor, None, None),
             (Sliced(delay_frames=2), SlicedExecutor, 2, None), (Parallel(), ThreadExecutor, None, (2, 1))]
    for spec, kind, delay, split in cases:
        with built("low-latency", spec) as rt:
            assert isinstance(rt.executor, kind) and rt.delay_frames == delay and rt.threads == split
            assert rt.background and rt.mode == "low-latency"
            if isinstance(spec, Sliced):
                assert rt.executor.max_delay == spec.max_delay and rt.executor.threads == 2
        with built("fixed", spec) as rt:
            assert isinstance(rt.executor, InlineExecutor) and not rt.background and rt.mode == "fixed"
    assert RuntimeConfig().executor == Sliced() and executor_spec("parallel") == Parallel()
    assert executor_spec("sliced", 3) == Sliced(max_delay=3)
    with pytest.raises(ParameterError, match="^delay_frames 0 is not valid"):
        Inline(0)
    with pytest.raises(ParameterError, match="^max_delay 0 is not valid"):
        Sliced(max_delay=0)
    with pytest.raises(UserError, match="unknown worker 'gpu'"):
        executor_spec("gpu")
