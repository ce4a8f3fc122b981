"""Keyframe policies, one small class each, behind one protocol.

Per frame that could become a keyframe (not while a keyframe's ``high`` is still in flight) the
runtime asks ``deviation(key, cur)`` (this frame's deviation from the keyframe, None for the
policies that use none), then ``decide(frames_since_key, deviation_sum, deviation) ->
(make_keyframe, deviation sum after this frame)``, which is pure. ``frames_since_key`` counts
frames since the last frame *chosen* as a keyframe; ``deviation_sum`` is the sum of the
deviations of the frames asked since then (the runtime keeps it in its state; policies hold no
per-stream state).

The deviation-driven policies (:class:`AdaptiveThreshold` on the predicted deviation,
:class:`Oracle` on the true one) take an adaptive rule (scheduling/rules.py: ``instant`` or
``accumulated``) and decide through :func:`~lowlatseg.scheduling.rules.decide_keyframe`. On our
val clip the accumulated rule is at least as good as the instant rule at most rates, but neither
beats a fixed interval there (README).
"""

from __future__ import annotations

import copy
from typing import Protocol, runtime_checkable

import torch

from lowlatseg.errors import ParameterError
from lowlatseg.nn.inference import for_inference
from lowlatseg.nn.splitnet import SplitSegNet
from lowlatseg.propagation.methods import Current, KeyState, Propagator
from lowlatseg.propagation.produce import propagated_logits
from lowlatseg.scheduling.predictor import Predictor
from lowlatseg.scheduling.rules import INSTANT, AdaptiveRule, as_rule, decide_keyframe
from lowlatseg.scheduling.targets import label_deviation


def check_rule(rule: str) -> str:
    """``rule`` if it names an adaptive rule (scheduling/rules.py), else a clear error."""
    return as_rule(rule).name


def check_interval(interval: int) -> int:
    if interval < 1:
        raise ParameterError(f"{{interval}} {interval} is not valid; it must be at least 1", "interval")
    return interval


@runtime_checkable
class KeyframePolicy(Protocol):
    name: str

    def deviation(self, key: KeyState, cur: Current) -> float | None: ...

    def decide(self, frames_since_key: int, deviation_sum: float, deviation: float | None) -> tuple[bool, float]: ...


class EveryFrame:
    """Every frame is a keyframe (the per-frame mode)."""

    name = "per-frame"

    def deviation(self, key: KeyState, cur: Current) -> float | None:
        return None

    def decide(self, frames_since_key: int, deviation_sum: float, deviation: float | None) -> tuple[bool, float]:
        return True, deviation_sum


class Fixed:
    """A keyframe every ``interval`` frames."""

    name = "fixed"

    def __init__(self, interval: int) -> None:
        self.interval = check_interval(interval)

    def deviation(self, key: KeyState, cur: Current) -> float | None:
        return None

    def decide(self, frames_since_key: int, deviation_sum: float, deviation: float | None) -> tuple[bool, float]:
        return frames_since_key >= self.interval, deviation_sum


class _DeviationRule:
    """What the deviation-driven policies share: an adaptive ``rule`` (or its name) with its
    number ``threshold`` (the instant rule's threshold, the accumulated rule's budget), and a
    keyframe after ``max_interval`` frames (0: no limit)."""

    def __init__(self, threshold: float, *, rule: AdaptiveRule | str, max_interval: int) -> None:
        self.rule = as_rule(rule)
        self.threshold = self.rule.check(threshold)
        self.max_interval = max_interval

    def decide(self, frames_since_key: int, deviation_sum: float, deviation: float | None) -> tuple[bool, float]:
        assert deviation is not None, "a deviation-driven policy decides on the deviation it returned"
        forced = self.max_interval > 0 and frames_since_key >= self.max_interval
        return decide_keyframe(self.rule, self.threshold, deviation, deviation_sum, forced=forced)


class AdaptiveThreshold(_DeviationRule):
    """The rule (see :class:`_DeviationRule`) on the *predicted* deviation."""

    name = "adaptive"

    def __init__(self, predictor: Predictor, threshold: float, *, rule: AdaptiveRule | str = INSTANT,
                 max_interval: int = 0) -> None:
        super().__init__(threshold, rule=rule, max_interval=max_interval)
        self.predictor = for_inference(predictor)  # BatchNorm folded, channels-last: same function, faster
        if self.predictor is predictor:  # no weights to fold (warp-error): still a copy of its own, as it holds state
            self.predictor = copy.deepcopy(predictor)

    @torch.inference_mode()
    def deviation(self, key: KeyState, cur: Current) -> float | None:
        return float(self.predictor(key.f_low, cur.f_low)[0])


class Oracle(_DeviationRule):
    """The rule (see :class:`_DeviationRule`) on the *true* deviation. Evaluation only: it runs
    the whole network on every frame to know the truth. ``eval scheduling`` replays the same
    rules on a table of true deviations; online and replayed schedules are the same
    (tests/test_schedules.py)."""

    name = "oracle"

    def __init__(self, model: SplitSegNet, method: Propagator, threshold: float, *, rule: AdaptiveRule | str = INSTANT,
                 max_interval: int = 0, weights: torch.Tensor | None = None) -> None:
        super().__init__(threshold, rule=rule, max_interval=max_interval)
        self.model, self.method, self.weights = model, method, weights  # weights: class-weighted (scheduling/targets.py)

    @torch.inference_mode()
    def deviation(self, key: KeyState, cur: Current) -> float | None:
        return float(true_deviation(self.model, self.method, key, cur, self.weights)[0])


def rule_fields(policy: KeyframePolicy) -> dict[str, object]:
    """How results record a policy's rule: ``{"rule": name, <its number's name>: value}`` for a
    deviation-driven policy, ``{"rule": None, "threshold": None}`` for the others."""
    if isinstance(policy, _DeviationRule):
        return {"rule": policy.rule.name, policy.rule.number: policy.threshold}
    return {"rule": None, "threshold": None}


def true_deviation(model: SplitSegNet, method: Propagator, key: KeyState, cur: Current,
                   weights: torch.Tensor | None = None) -> torch.Tensor:
    """B deviations of the propagated labels (with fusion) from the per-frame labels on the feature
    grid: the fraction of pixels that differ, or with ``weights`` (C x C) the class-weighted
    deviation (scheduling/targets.py)."""
    prop = propagated_logits(model, method, key, cur, fuse=True).argmax(1)
    ref = model.head(model.high(cur.f_low), cur.f_low).argmax(1)
    return label_deviation(prop, ref, weights)
