"""The online runtime's contracts: order, keyframes, low-latency equivalence, worker errors."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import panning_frames
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


_frames = panning_frames


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
    res = _run(build_runtime(model, RuntimeConfig(mode="low-latency", propagation=tiny_prop, interval=3, size=SIZE, executor=Inline(1),
                                                  spare_keyframes=False)), _frames(10))
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
    rt = build_runtime(model, RuntimeConfig(mode="low-latency", propagation=tiny_prop, interval=2, size=SIZE, executor=Sliced(delay_frames=1),
                                             spare_keyframes=False))
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


def test_default_size_keeps_the_frames_aspect_ratio(model, tiny_prop: Path) -> None:
    """As in the CLI, the default network input is 360 pixels high with the frame's aspect ratio:
    a 16:9 camera is not squashed to CamVid's 4:3."""
    wide = [np.ascontiguousarray(np.resize(f, (90, 160, 3))) for f in _frames(2)]
    res = _run(build_runtime(model, RuntimeConfig(mode="per-frame", propagation=tiny_prop)), wide)
    assert {r.labels.shape for r in res} == {(360, 640)}


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
    rt = build_runtime(model, RuntimeConfig(mode="low-latency", propagation=tiny_prop, interval=3, size=SIZE, executor=Inline(1),
                                                  spare_keyframes=False))
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


def test_sub_pixel_head_runs_in_every_mode(tmp_path: Path) -> None:
    """A network whose head predicts a finer grid (``head_upsample`` 2, as ``llnet-e-sp``) runs in the
    runtime: labels at the frame's size, keyframes labelled as the per-frame network labels them,
    and propagated frames from the finer logits too."""
    from dataclasses import replace

    from lowlatseg.checkpoint import export_weights
    from lowlatseg.nn.builders import build, llnet_tiny

    torch.manual_seed(0)
    net = build(replace(llnet_tiny(), head_upsample=2)).eval()
    with torch.no_grad():
        net.head.classify.bias.zero_()
        net.head.classify.weight.add_(0.3 * torch.randn_like(net.head.classify.weight))  # sub-cells differ
    path = tmp_path / "sp.pt"
    export_weights(net, path)
    model = load_model(path)
    assert model.config.head_upsample == 2
    frames = _frames(6)
    per_frame = _run(build_runtime(model, RuntimeConfig(mode="per-frame", size=SIZE)), frames)
    fixed = _run(build_runtime(model, RuntimeConfig(mode="fixed", interval=3, size=SIZE)), frames)
    low = _run(build_runtime(model, RuntimeConfig(mode="low-latency", interval=3, size=SIZE, executor=Inline(1))), frames)
    for res in (per_frame, fixed, low):
        assert all(r.labels.shape == SIZE for r in res)
    for a, b in zip(per_frame, fixed):
        if b.is_keyframe:
            np.testing.assert_array_equal(a.labels, b.labels)
    assert len({r.labels.tobytes() for r in per_frame}) > 1
