"""Keyframe policies, one small class each, behind one protocol.

``decide(frames_since_key, key, cur) -> (make_keyframe, deviation or None)``, asked for every
frame that could become a keyframe (not while a keyframe's ``high`` is still in flight).
``frames_since_key`` counts frames since the last frame *chosen* as a keyframe.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from lowlatseg.errors import UserError
from lowlatseg.nn.splitnet import SplitSegNet
from lowlatseg.propagation.methods import Current, KeyState, Propagator
from lowlatseg.propagation.produce import propagated_logits
from lowlatseg.scheduling.predictor import DeviationPredictor


def check_threshold(threshold: float) -> float:
    if not 0.0 <= threshold <= 1.0:
        raise UserError(f"--threshold {threshold} is outside [0, 1]; it is a fraction of pixels (e.g. 0.1)")
    return threshold


@runtime_checkable
class KeyframePolicy(Protocol):
    name: str

    def decide(self, frames_since_key: int, key: KeyState, cur: Current) -> tuple[bool, float | None]: ...


class EveryFrame:
    """Every frame is a keyframe (the per-frame mode)."""

    name = "per-frame"

    def decide(self, frames_since_key: int, key: KeyState, cur: Current) -> tuple[bool, float | None]:
        return True, None


class Fixed:
    """A keyframe every ``interval`` frames."""

    name = "fixed"

    def __init__(self, interval: int) -> None:
        if interval < 1:
            raise UserError(f"--interval {interval} is not valid; it must be at least 1")
        self.interval = interval

    def decide(self, frames_since_key: int, key: KeyState, cur: Current) -> tuple[bool, float | None]:
        return frames_since_key >= self.interval, None


class AdaptiveThreshold:
    """A keyframe when the predicted deviation passes ``threshold`` (or after ``max_interval`` frames)."""

    name = "adaptive"

    def __init__(self, predictor: DeviationPredictor, threshold: float, *, max_interval: int = 0) -> None:
        self.predictor = predictor.eval()
        self.threshold = check_threshold(threshold)
        self.max_interval = max_interval

    @torch.inference_mode()
    def decide(self, frames_since_key: int, key: KeyState, cur: Current) -> tuple[bool, float | None]:
        dev = float(self.predictor(key.f_low, cur.f_low)[0])
        forced = self.max_interval > 0 and frames_since_key >= self.max_interval
        return dev > self.threshold or forced, dev


class Oracle:
    """A keyframe when the *true* deviation passes ``threshold``. Evaluation only: it runs the
    whole network on every frame to know the truth."""

    name = "oracle"

    def __init__(self, model: SplitSegNet, method: Propagator, threshold: float) -> None:
        self.model, self.method, self.threshold = model, method, check_threshold(threshold)

    @torch.inference_mode()
    def decide(self, frames_since_key: int, key: KeyState, cur: Current) -> tuple[bool, float | None]:
        dev = float(true_deviation(self.model, self.method, key, cur)[0])
        return dev > self.threshold, dev


def true_deviation(model: SplitSegNet, method: Propagator, key: KeyState, cur: Current) -> torch.Tensor:
    """B fractions of feature-grid pixels whose propagated label differs from the per-frame label."""
    prop = propagated_logits(model, method, key, cur, fuse=True).argmax(1)
    ref = model.head(model.high(cur.f_low), cur.f_low).argmax(1)
    return (prop != ref).float().mean((1, 2))
