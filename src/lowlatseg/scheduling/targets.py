"""What a deviation predictor learns: how far a propagated frame's labels are from the per-frame
network's, counted by pixels or weighted by how much each disagreement costs in mIoU.

``pixels`` (the paper's): the fraction of feature-grid pixels whose propagated label differs
from the per-frame label. Every pixel counts the same, so a frame where a few pixels of a rare
class go wrong looks nearly perfect, although mIoU averages over classes and those pixels cost
it most.

``class-weighted``: each disagreeing pixel (per-frame label ``a``, propagated label ``b``)
counts ``(w_a + w_b) / 2`` with ``w_c = 1 / (C f_c)``, ``f_c`` the class's share of the training
split's labels (floored at :data:`MIN_FREQUENCY`) and ``C`` the number of classes, so that
``sum_c f_c w_c = 1``: a pixel of a class as common as average weighs about 1, and an error
costs in proportion to what it takes from both classes' IoU (to first order, the IoU of class
``c`` moves by one pixel over the class's size). The mean is clipped to 1, the predictors'
range. With equal frequencies every weight is 1 and it equals ``pixels``
(tests/test_deviation_targets.py). docs/measurements.md (2026-12-07) shows what it gains as the
signal of the accumulated rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from lowlatseg.defaults import DEVIATION_TARGETS as TARGETS
from lowlatseg.errors import UserError

MIN_FREQUENCY = 1e-3  # a class rarer than this in the training labels weighs as if it had this share


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise UserError(f"deviation target {target!r} is not one of {', '.join(TARGETS)}")
    return target


def pair_weights(frequencies: Sequence[float] | np.ndarray) -> torch.Tensor:
    """C x C weights of a (per-frame label a, propagated label b) disagreement, 0 on the diagonal,
    from the classes' label shares (C floats, summing to 1)."""
    f = np.asarray(frequencies, dtype=np.float64)
    if f.ndim != 1 or f.size < 2 or not np.isfinite(f).all() or (f < 0).any() or f.sum() <= 0:
        raise UserError(f"class frequencies must be {f.size if f.ndim == 1 else 'C'} non-negative shares with a positive sum; "
                        "they come from the training split's labels: check that it has labelled pixels")
    f = np.maximum(f / f.sum(), MIN_FREQUENCY)
    f = f / f.sum()  # renormalised after the floor, so that sum_c f_c w_c = 1 holds
    w = 1.0 / (f.size * f)
    m = (w[:, None] + w[None, :]) / 2
    np.fill_diagonal(m, 0.0)
    return torch.tensor(m, dtype=torch.float32)


def label_deviation(propagated: torch.Tensor, reference: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """B deviations of ``propagated`` labels from ``reference`` labels (B x h x w each, int64):
    the fraction of differing pixels (``weights`` None), or the mean of ``weights[reference,
    propagated]`` clipped to 1 (C x C, :func:`pair_weights`)."""
    if propagated.shape != reference.shape:
        raise ValueError(f"label maps differ in shape: {tuple(propagated.shape)} and {tuple(reference.shape)}")
    if weights is None:
        return (propagated != reference).float().mean((1, 2))
    return weights.to(propagated.device)[reference, propagated].mean((1, 2)).clamp(max=1.0)
