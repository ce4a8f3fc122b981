"""Choosing the adaptive threshold for a target keyframe rate.

The policy runs online: the keyframe moves when a frame is chosen, so the keyframe rate is a
property of the whole sequence. For a threshold, :func:`keyframe_fraction` replays the policy
over precomputed low-level features (cheap: only the predictor runs); :func:`threshold_for_rate`
bisects the threshold (higher threshold -> fewer keyframes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lowlatseg.scheduling.predictor import Predictor
from lowlatseg.scheduling.rules import INSTANT, AdaptiveRule, as_rule, decide_keyframe


Clips = Sequence[torch.Tensor] | Sequence[Sequence[torch.Tensor]]


def _as_clips(f_lows: Clips) -> list[Sequence[torch.Tensor]]:
    if len(f_lows) and isinstance(f_lows[0], torch.Tensor):
        return [f_lows]  # type: ignore[list-item]
    return list(f_lows)  # type: ignore[arg-type]


@torch.inference_mode()
def keyframe_fraction(predictor: Predictor, f_lows: Clips, threshold: float, *, delay_frames: int = 0,
                      rule: AdaptiveRule | str = INSTANT) -> float:
    """Fraction of frames chosen as keyframes (each clip's frame 0 counts) when replaying the
    adaptive policy (``rule`` instant or accumulated, see :mod:`lowlatseg.scheduling.policies`)
    like the runtime does. ``delay_frames`` > 0 replays the low-latency mode: a keyframe chosen
    at t becomes the reference at t + delay, and no frame is considered while one is pending.
    ``f_lows``: one clip (a list of 1 x C x h x w) or a list of clips."""
    rule = as_rule(rule)
    n_keys = n = 0
    for clip in _as_clips(f_lows):
        key, pending, ready_at, acc = clip[0], None, 0, 0.0
        n_keys += 1
        n += len(clip)
        for i, f in enumerate(clip[1:], 1):
            if pending is not None and i >= ready_at:
                key, pending = pending, None
            if pending is not None:
                continue
            choose, acc = decide_keyframe(rule, threshold, float(predictor(key, f)[0]), acc)
            if choose:
                n_keys += 1
                if delay_frames:
                    pending, ready_at = f, i + delay_frames
                else:
                    key = f
    return n_keys / max(n, 1)


def fixed_interval_rate(frames: int, interval: int) -> float:
    """Keyframe fraction of a keyframe every ``interval`` frames over ``frames`` frames (frame 0 included)."""
    return -(-frames // interval) / frames


def threshold_for_rate(predictor: Predictor, f_lows: Clips, rate: float, *, iters: int = 14,
                       delay_frames: int = 0, rule: AdaptiveRule | str = INSTANT) -> float:
    """The rule's number (``instant``: a threshold in [0, 1]; ``accumulated``: a budget in
    [0, 64]; the rule's ``search_max``) whose replayed keyframe fraction is as close as possible to ``rate`` (0 < rate <= 1)."""
    if not 0 < rate <= 1:
        raise ValueError(f"target keyframe rate {rate} must be in (0, 1]")
    rule = as_rule(rule)
    lo, hi = 0.0, rule.search_max
    iters += rule.search_extra_steps  # same resolution relative to the range
    best, best_err = (lo + hi) / 2, float("inf")
    for _ in range(iters):
        mid = (lo + hi) / 2
        frac = keyframe_fraction(predictor, f_lows, mid, delay_frames=delay_frames, rule=rule)
        if abs(frac - rate) < best_err:
            best, best_err = mid, abs(frac - rate)
        if frac > rate:
            lo = mid  # too many keyframes: raise the threshold
        else:
            hi = mid
    return best
