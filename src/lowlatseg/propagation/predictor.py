"""The kernel predictor of adaptive propagation.

From the low-level features of the keyframe and the current frame (B x low_ch x h x w each)
to K*K normalised weights per location (B x K*K x h x w, softmax over the K*K axis, same
offset order and dilation as :func:`lowlatseg.propagation.svconv.sv_conv`).

What it sees: a local correlation volume (cosine similarity between the current frame's
embedding at p and the keyframe's embedding at p + offset, for every kernel offset), the
current embedding and the absolute embedding difference. The correlation term alone already
gives a sensible kernel (a soft nearest-match); the convolutional refinement learns where to
trust it (occlusions, texture-less regions, large motion).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lowlatseg.nn.blocks import ConvBNReLU


def local_correlation(current: torch.Tensor, key: torch.Tensor, *, kernel_size: int, dilation: int) -> torch.Tensor:
    """B x C x h x w each -> B x K*K x h x w: the dot product <current(p), key(p + d*q)> for every
    offset q (cosine similarity when both inputs are unit vectors per location). Borders replicate."""
    r = kernel_size // 2 * dilation
    h, w = current.shape[-2:]
    padded = F.pad(key, (r, r, r, r), mode="replicate")
    out = []
    for i in range(kernel_size):
        for j in range(kernel_size):
            y, x = i * dilation, j * dilation
            out.append((padded[:, :, y : y + h, x : x + w] * current).sum(1, keepdim=True))
    return torch.cat(out, dim=1)


class KernelPredictor(nn.Module):
    """(f_low_key, f_low_cur) -> B x K*K x h x w softmax weights."""

    def __init__(self, *, low_ch: int, kernel_size: int = 9, dilation: int = 2, embed_ch: int = 32, hidden: int = 48) -> None:
        super().__init__()
        self.kernel_size, self.dilation = kernel_size, dilation
        kk = kernel_size * kernel_size
        self.embed = nn.Conv2d(low_ch, embed_ch, 1)
        self.log_scale = nn.Parameter(torch.tensor(2.3))  # temperature of the correlation term, e^2.3 ~ 10
        self.refine = nn.Sequential(
            ConvBNReLU(kk + 2 * embed_ch, hidden, kernel=1),
            ConvBNReLU(hidden, hidden, kernel=3),
            ConvBNReLU(hidden, hidden, kernel=3, dilation=2),
            nn.Conv2d(hidden, kk, 1),
        )
        nn.init.zeros_(self.refine[-1].weight)
        nn.init.zeros_(self.refine[-1].bias)

    def forward(self, f_low_key: torch.Tensor, f_low_cur: torch.Tensor) -> torch.Tensor:
        ek = F.normalize(self.embed(f_low_key), dim=1)  # B x E x h x w, unit length per location
        ec = F.normalize(self.embed(f_low_cur), dim=1)
        corr = local_correlation(ec, ek, kernel_size=self.kernel_size, dilation=self.dilation)  # B x K*K x h x w
        logits = corr * self.log_scale.exp() + self.refine(torch.cat([corr, ec, (ec - ek).abs()], dim=1))
        return torch.softmax(logits, dim=1)
