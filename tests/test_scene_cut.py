"""Scene cuts make a keyframe at once: the detector on real footage with two cuts, and the runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SHARED
from lowlatseg.checkpoint import load_model
from lowlatseg.runtime.build import build_runtime
from lowlatseg.runtime.config import Inline, RuntimeConfig
from lowlatseg.runtime.frames import network_size, prepare
from lowlatseg.scheduling.scene_cut import distances, is_cut, signature

CUTS_VIDEO = SHARED / "video" / "freeway_cuts_854x480.mp4"
SIZE = (48, 64)


def _scene(seed: int, n: int, shift: int = 2) -> list[np.ndarray]:
    """n frames of one random scene panning right by ``shift`` px a frame (48 x 64 RGB)."""
    base = np.random.default_rng(seed).integers(0, 255, (12, 30, 3), dtype=np.uint8)
    import cv2

    big = cv2.resize(base, (120, 48), interpolation=cv2.INTER_LINEAR)
    return [np.ascontiguousarray(big[:, i * shift : i * shift + 64]) for i in range(n)]


def _x(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame).permute(2, 0, 1).float().div(255)[None]


def test_identical_frames_are_no_cut_and_distances_are_zero() -> None:
    f = _scene(0, 1)[0]
    a = signature(_x(f))
    assert distances(a, a)[0] == pytest.approx(0.0, abs=1e-6)
    assert distances(a, a)[1] == pytest.approx(0.0, abs=1e-3)
    assert not is_cut(a, a)


def test_another_scene_is_a_cut_and_a_pan_is_not() -> None:
    one, two = _scene(0, 6), _scene(5, 1)
    sigs = [signature(_x(f)) for f in one]
    assert not any(is_cut(a, b) for a, b in zip(sigs, sigs[1:]))
    assert is_cut(sigs[-1], signature(_x(two[0])))


@pytest.mark.skipif(not CUTS_VIDEO.is_file(), reason="../shared/data/video not present")
def test_the_cuts_of_the_freeway_clip_are_found_and_nothing_else() -> None:
    from lowlatseg.io.video import VideoReader

    cuts, prev = [], None
    with VideoReader(CUTS_VIDEO) as r:
        for i, frame in enumerate(r):
            x = prepare(frame, network_size(frame.shape[:2], 180))
            sig = signature(x)
            if prev is not None and is_cut(prev, sig):
                cuts.append(i)
            prev = sig
    assert cuts == [363, 434]


def test_the_runtime_makes_a_keyframe_at_a_cut(tiny_weights: Path, tiny_prop: Path) -> None:
    model = load_model(tiny_weights)
    frames = _scene(0, 7) + _scene(5, 7)  # a cut at frame 7
    with build_runtime(model, RuntimeConfig(mode="fixed", propagation=tiny_prop, interval=100, size=SIZE)) as rt:
        res = [rt.step(f) for f in frames]
    assert [r.index for r in res if r.is_keyframe] == [0, 7]
    assert [r.keyframe_index for r in res][7:] == [7] * 7
    with build_runtime(model, RuntimeConfig(mode="fixed", propagation=tiny_prop, interval=100, size=SIZE)) as rt:
        rt.scene_cuts = False
        assert [r.index for r in (rt.step(f) for f in frames) if r.is_keyframe] == [0]


def test_low_latency_makes_the_cut_keyframe_as_soon_as_one_is_free(tiny_weights: Path, tiny_prop: Path) -> None:
    """A cut while a keyframe is in flight is kept and made a keyframe at the first chance."""
    model = load_model(tiny_weights)
    frames = _scene(0, 6) + _scene(5, 8)  # a cut at frame 6
    # keyframes every 5 frames, each ready 3 frames after it is chosen: frame 5's is in flight at 6
    rt = build_runtime(model, RuntimeConfig(mode="low-latency", propagation=tiny_prop, interval=5, size=SIZE, executor=Inline(3),
                                                  spare_keyframes=False))
    with rt:
        res = [rt.step(f) for f in frames]
    chosen = [r.index for r in res if r.is_keyframe]
    assert chosen[:2] == [0, 5] and chosen[2] == 8  # frame 5's keyframe is swapped in at 8: the cut fires there
