"""Keyframe policies, one small class each, behind one protocol.

``decide(frames_since_key, deviation_sum, key, cur) -> (make_keyframe, deviation or None)``,
asked for every frame that could become a keyframe (not while a keyframe's ``high`` is still in
flight). ``frames_since_key`` counts frames since the last frame *chosen* as a keyframe;
``deviation_sum`` is the sum of the deviations the policy returned for the frames asked since
then (the runtime keeps it in its state; policies hold no per-stream state).

Two adaptive rules share one class:

* ``instant`` (the paper's): a keyframe when the predicted deviation of *this* frame passes a
  threshold in [0, 1];
* ``accumulated``: a keyframe when the predicted deviations *summed* over the frames since the
  keyframe pass a budget (>= 0, in "frames' worth of deviating pixels"). If deviation grows at
  rate ``a`` per frame, the instant rule gives intervals ~ 1/a while the accumulated rule gives
  ~ 1/sqrt(a), which is what minimises the mean deviation of all frames for a given keyframe
  rate (minimise a*L/2 + lambda/L over the interval L). On our val clip it is at least as good
  as the instant rule at most rates, but neither beats a fixed interval there (README).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from lowlatseg.errors import UserError
from lowlatseg.nn.inference import for_inference
from lowlatseg.nn.splitnet import SplitSegNet
from lowlatseg.propagation.methods import Current, KeyState, Propagator
from lowlatseg.propagation.produce import propagated_logits
from lowlatseg.scheduling.predictor import DeviationPredictor


RULES = ("instant", "accumulated")
RULE_SEARCH_MAX = {"instant": 1.0, "accumulated": 64.0}  # upper end when searching a rule's number for a rate


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise UserError(f"unknown adaptive rule {rule!r}; choose one of: {', '.join(RULES)}")
    return rule


def rule_fires(rule: str, deviation: float, deviation_sum: float, value: float) -> bool:
    """The adaptive rules' one test: ``deviation`` of this frame, ``deviation_sum`` of the frames
    asked since the keyframe (not counting this one). The runtime, the calibration replay and
    ``eval scheduling`` all decide through this function."""
    return (deviation if rule == "instant" else deviation_sum + deviation) > value


def check_interval(interval: int) -> int:
    if interval < 1:
        raise UserError(f"--interval {interval} is not valid; it must be at least 1")
    return interval


def check_threshold(threshold: float) -> float:
    if not 0.0 <= threshold <= 1.0:
        raise UserError(f"--threshold {threshold} is outside [0, 1]; it is a fraction of pixels (e.g. 0.1)")
    return threshold


def check_budget(budget: float) -> float:
    if not budget >= 0.0 or budget == float("inf"):
        raise UserError(f"--budget {budget} is not valid; it is a sum of deviations since the keyframe, a finite number >= 0 (e.g. 0.5)")
    return budget


@runtime_checkable
class KeyframePolicy(Protocol):
    name: str

    def decide(self, frames_since_key: int, deviation_sum: float, key: KeyState, cur: Current) -> tuple[bool, float | None]: ...


class EveryFrame:
    """Every frame is a keyframe (the per-frame mode)."""

    name = "per-frame"

    def decide(self, frames_since_key: int, deviation_sum: float, key: KeyState, cur: Current) -> tuple[bool, float | None]:
        return True, None


class Fixed:
    """A keyframe every ``interval`` frames."""

    name = "fixed"

    def __init__(self, interval: int) -> None:
        self.interval = check_interval(interval)

    def decide(self, frames_since_key: int, deviation_sum: float, key: KeyState, cur: Current) -> tuple[bool, float | None]:
        return frames_since_key >= self.interval, None


class _DeviationRule:
    """What the deviation-driven policies share: rule ``instant`` (a keyframe when the deviation
    passes ``threshold``) or ``accumulated`` (when the deviations summed since the keyframe pass
    it), and a keyframe after ``max_interval`` frames (0: no limit)."""

    def __init__(self, threshold: float, *, rule: str, max_interval: int) -> None:
        self.rule = check_rule(rule)
        self.threshold = check_threshold(threshold) if rule == "instant" else check_budget(threshold)
        self.max_interval = max_interval

    def _fires(self, dev: float, frames_since_key: int, deviation_sum: float) -> bool:
        forced = self.max_interval > 0 and frames_since_key >= self.max_interval
        return rule_fires(self.rule, dev, deviation_sum, self.threshold) or forced


class AdaptiveThreshold(_DeviationRule):
    """The rule (see :class:`_DeviationRule`) on the *predicted* deviation."""

    name = "adaptive"

    def __init__(self, predictor: DeviationPredictor, threshold: float, *, rule: str = "instant", max_interval: int = 0) -> None:
        super().__init__(threshold, rule=rule, max_interval=max_interval)
        self.predictor = for_inference(predictor)  # BatchNorm folded, channels-last: same function, faster

    @torch.inference_mode()
    def decide(self, frames_since_key: int, deviation_sum: float, key: KeyState, cur: Current) -> tuple[bool, float | None]:
        dev = float(self.predictor(key.f_low, cur.f_low)[0])
        return self._fires(dev, frames_since_key, deviation_sum), dev


class Oracle(_DeviationRule):
    """The rule (see :class:`_DeviationRule`) on the *true* deviation. Evaluation only: it runs
    the whole network on every frame to know the truth. ``eval scheduling`` replays the same
    rules on a table of true deviations; online and replayed schedules are the same
    (tests/test_schedules.py)."""

    name = "oracle"

    def __init__(self, model: SplitSegNet, method: Propagator, threshold: float, *, rule: str = "instant",
                 max_interval: int = 0) -> None:
        super().__init__(threshold, rule=rule, max_interval=max_interval)
        self.model, self.method = model, method

    @torch.inference_mode()
    def decide(self, frames_since_key: int, deviation_sum: float, key: KeyState, cur: Current) -> tuple[bool, float | None]:
        dev = float(true_deviation(self.model, self.method, key, cur)[0])
        return self._fires(dev, frames_since_key, deviation_sum), dev


def true_deviation(model: SplitSegNet, method: Propagator, key: KeyState, cur: Current) -> torch.Tensor:
    """B fractions of feature-grid pixels whose propagated label differs from the per-frame label."""
    prop = propagated_logits(model, method, key, cur, fuse=True).argmax(1)
    ref = model.head(model.high(cur.f_low), cur.f_low).argmax(1)
    return (prop != ref).float().mean((1, 2))
