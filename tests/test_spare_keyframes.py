"""Low-latency's spare keyframes (runtime/stream.py): a keyframe on every frame while the stream
leaves time for a whole ``high`` between frames, the policy's keyframes otherwise."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import panning_frames
from lowlatseg.checkpoint import load_model
from lowlatseg.runtime import StreamRuntime
from lowlatseg.runtime.build import build_runtime
from lowlatseg.runtime.config import Inline, RuntimeConfig, Sliced

SIZE = (48, 64)


_frames = panning_frames


@pytest.fixture
def model(tiny_weights: Path):
    return load_model(tiny_weights)


def _runtime(model, tiny_prop: Path, **kw) -> StreamRuntime:
    return build_runtime(model, RuntimeConfig(mode="low-latency", propagation=tiny_prop, interval=4, size=SIZE, **kw))


def _run(rt: StreamRuntime, frames: list[np.ndarray], *, idle: bool = False):
    """Every frame through ``rt``; ``idle``: after each, wait until a keyframe in flight is done
    (a stream that leaves time for a whole high between frames, however slow the machine)."""
    out = []
    with rt:
        for f in frames:
            out.append(rt.step(f))
            deadline = time.monotonic() + 60
            while idle and rt.state.pending is not None and not rt.state.pending.future.done():
                assert time.monotonic() < deadline, "a keyframe's high did not finish in 60 s"
                time.sleep(0.002)
    return out


def test_ready_by_the_next_frame_makes_every_frame_a_keyframe(model, tiny_prop: Path) -> None:
    """Features one frame late: each frame is a keyframe, answered from the frame before it."""
    res = _run(_runtime(model, tiny_prop, executor=Inline(1)), _frames(9))
    assert all(r.is_keyframe for r in res)
    assert [r.keyframe_index for r in res] == [0, *range(8)]


def test_later_features_leave_the_choice_to_the_policy(model, tiny_prop: Path) -> None:
    """Features two frames late: frame 1 probes (chosen at once after the first keyframe), then
    every 4th frame from the last choice, as the fixed policy says; never its own features."""
    res = _run(_runtime(model, tiny_prop, executor=Inline(2)), _frames(12))
    assert [r.index for r in res if r.is_keyframe] == [0, 1, 5, 9]
    assert all(r.keyframe_index < r.index for r in res[1:])


def test_off_is_the_policy_alone(model, tiny_prop: Path) -> None:
    res = _run(_runtime(model, tiny_prop, executor=Inline(1), spare_keyframes=False), _frames(9))
    assert [r.index for r in res if r.is_keyframe] == [0, 4, 8]


def test_spare_and_policy_labels_agree_where_they_share_a_keyframe(model, tiny_prop: Path) -> None:
    """Spare keyframes change only which keyframe a frame comes from: frame 1 is propagated from
    frame 0 either way, so its labels are the same."""
    frames = _frames(3)
    on = _run(_runtime(model, tiny_prop, executor=Inline(1)), frames)
    off = _run(_runtime(model, tiny_prop, executor=Inline(1), spare_keyframes=False), frames)
    assert on[1].keyframe_index == off[1].keyframe_index == 0
    assert np.array_equal(on[1].labels, off[1].labels)
    assert on[2].keyframe_index == 1 and off[2].keyframe_index == 0


@pytest.mark.parametrize("mode", ["fixed", "adaptive", "per-frame"])
def test_only_low_latency_has_them(model, tiny_prop: Path, tiny_sched: Path, mode: str) -> None:
    rt = build_runtime(model, RuntimeConfig(mode=mode, propagation=tiny_prop, scheduler=tiny_sched, size=SIZE,
                                            interval=4 if mode == "fixed" else None))
    assert rt.spare_keyframes is False
    if mode == "fixed":
        assert [r.index for r in _run(rt, _frames(9)) if r.is_keyframe] == [0, 4, 8]
    else:
        rt.close()


def test_a_slow_live_stream_gets_a_keyframe_on_every_frame(model, tiny_prop: Path) -> None:
    """Live (the sliced executor), each frame posted once the last keyframe's high is done: every
    frame after the first is a keyframe answered from the frame before it."""
    torch.set_num_threads(1)
    res = _run(_runtime(model, tiny_prop, executor=Sliced(), threads=1), _frames(8), idle=True)
    assert all(r.is_keyframe for r in res)
    assert [r.keyframe_index for r in res[1:]] == list(range(7))


def test_a_stream_without_time_between_frames_falls_back_to_the_policy(model, tiny_prop: Path) -> None:
    """Live, with a keyframe's features always two frames late: after the probe at frame 1, the
    policy's keyframes only."""
    res = _run(_runtime(model, tiny_prop, executor=Sliced(delay_frames=2), threads=1), _frames(12))
    assert [r.index for r in res if r.is_keyframe] == [0, 1, 5, 9]


def _cut_at_3() -> list[np.ndarray]:
    frames = _frames(7)
    for i, v in zip(range(3, 7), (255, 250, 245, 240)):  # another scene from frame 3 on (white after noise)
        frames[i] = np.full_like(frames[i], v)
    return frames


def test_a_scene_cut_still_makes_a_keyframe(model, tiny_prop: Path) -> None:
    res = _run(_runtime(model, tiny_prop, executor=Inline(2)), _cut_at_3())
    assert res[3].is_keyframe and [r.index for r in res if r.is_keyframe] == [0, 1, 3]


def test_a_scene_cut_among_spare_keyframes_is_one_and_is_forgotten(model, tiny_prop: Path) -> None:
    """With a keyframe on every frame the cut's frame is one anyway; the cut must not wait for
    a later chance (it would make a keyframe twice for one cut)."""
    rt = _runtime(model, tiny_prop, executor=Inline(1))
    with rt:
        res = [rt.step(f) for f in _cut_at_3()[:4]]
        assert res[3].is_keyframe and not rt.state.cut_waiting
