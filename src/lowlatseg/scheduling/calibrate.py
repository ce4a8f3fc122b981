"""Choosing the adaptive threshold for a target keyframe rate.

The policy runs online: the keyframe moves when a frame is chosen, so the keyframe rate is a
property of the whole sequence. For a threshold, :func:`keyframe_fraction` replays the policy
over precomputed low-level features (cheap: only the predictor runs); :func:`threshold_for_rate`
bisects the threshold (higher threshold -> fewer keyframes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lowlatseg.scheduling.predictor import DeviationPredictor


@torch.inference_mode()
def keyframe_fraction(predictor: DeviationPredictor, f_lows: Sequence[torch.Tensor], threshold: float) -> float:
    """Fraction of frames chosen as keyframes (frame 0 counts) when replaying the adaptive policy."""
    key = f_lows[0]
    n_keys = 1
    for f in f_lows[1:]:
        if float(predictor(key, f)[0]) > threshold:
            key = f
            n_keys += 1
    return n_keys / len(f_lows)


def threshold_for_rate(predictor: DeviationPredictor, f_lows: Sequence[torch.Tensor], rate: float, *, iters: int = 14) -> float:
    """A threshold whose replayed keyframe fraction is as close as possible to ``rate`` (0 < rate <= 1)."""
    if not 0 < rate <= 1:
        raise ValueError(f"target keyframe rate {rate} must be in (0, 1]")
    lo, hi = 0.0, 1.0
    best, best_err = 0.5, float("inf")
    for _ in range(iters):
        mid = (lo + hi) / 2
        frac = keyframe_fraction(predictor, f_lows, mid)
        if abs(frac - rate) < best_err:
            best, best_err = mid, abs(frac - rate)
        if frac > rate:
            lo = mid  # too many keyframes: raise the threshold
        else:
            hi = mid
    return best
