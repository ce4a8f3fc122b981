"""The deviation predictor of adaptive keyframe scheduling.

From the low-level features of the last keyframe and the current frame (B x low_ch x h x w
each) to the predicted deviation of the propagated result: the fraction of pixels whose
propagated label differs from the per-frame network's label, in [0, 1] (B,).

Cheap by design: it only uses F_l, which every frame computes anyway, at half the feature
grid's resolution, and ends in global pooling (it predicts one number per frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lowlatseg.nn.blocks import ConvBNReLU


@dataclass(frozen=True)
class DeviationConfig:
    low_ch: int = 64  # channels of F_l of the base network
    width: int = 32  # hidden width
    in_ch: int = 0  # leading channels of F_l it reads (0: all). llnet-e's F_l ends with 192 channels of raw frame:
    # reading only its 64 learned ones takes 0.15x the time of reading all 256 (medians of 180 interleaved calls
    # at 360x480 on one thread, 2026-12-01): the predictor runs on every frame of the adaptive modes


class DeviationPredictor(nn.Module):
    """(f_low_key, f_low_cur) -> B predicted deviations in [0, 1]."""

    def __init__(self, cfg: DeviationConfig) -> None:
        super().__init__()
        self.config = cfg
        w = cfg.width
        self.in_ch = cfg.in_ch or cfg.low_ch
        self.reduce = ConvBNReLU(3 * self.in_ch, w, kernel=1)
        self.body = nn.Sequential(
            ConvBNReLU(w, w, stride=2),
            ConvBNReLU(w, w, dilation=2),
            ConvBNReLU(w, w, stride=2),
        )
        self.out = nn.Linear(2 * w, 1)

    def forward(self, f_low_key: torch.Tensor, f_low_cur: torch.Tensor) -> torch.Tensor:
        if self.in_ch < f_low_key.shape[1]:
            f_low_key, f_low_cur = f_low_key[:, : self.in_ch], f_low_cur[:, : self.in_ch]
        x = F.avg_pool2d(torch.cat([f_low_key, f_low_cur, (f_low_cur - f_low_key).abs()], 1), 2, ceil_mode=True)
        x = self.body(self.reduce(x))  # B x w x h/8 x w/8
        pooled = torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1)  # B x 2w
        return torch.sigmoid(self.out(pooled)).squeeze(1)
