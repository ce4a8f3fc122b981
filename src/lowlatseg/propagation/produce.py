"""From keyframe state to labels of a non-key frame, with or without low-level fusion.

* with fusion (the paper's "fuse" / AdaptNet): ``head(propagate(F_h^k), F_l^t)``: the
  current frame's own low-level features correct what propagation got wrong;
* without fusion: the keyframe's ``F_h`` and ``F_l`` are transported together by the same
  method and the head sees only propagated features: ``head(warp(F_h^k), warp(F_l^k))``.
"""

from __future__ import annotations

import torch

from lowlatseg.nn.splitnet import SplitSegNet
from lowlatseg.propagation.methods import Current, KeyState, Propagator


def make_key(model: SplitSegNet, index: int, image: torch.Tensor, f_low: torch.Tensor | None = None) -> KeyState:
    """Runs ``low`` (unless given) and ``high`` on a keyframe."""
    f_low = model.low(image) if f_low is None else f_low
    return KeyState(index=index, image=image, f_low=f_low, f_high=model.high(f_low))


def propagated_logits(
    model: SplitSegNet, method: Propagator, key: KeyState, cur: Current, *, fuse: bool,
    out_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """B x num_classes x (out_size or h x w) logits of the current frame, propagated from ``key``."""
    if fuse:
        return model.head(method.propagate(key, cur), cur.f_low, out_size)
    c_high = key.f_high.shape[1]
    both = method.warp(key, cur, torch.cat([key.f_high, key.f_low], dim=1))
    return model.head(both[:, :c_high], both[:, c_high:], out_size)
