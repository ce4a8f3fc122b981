"""The kernel predictor of adaptive propagation.

From the low-level features of the keyframe and the current frame (B x low_ch x h x w each)
to K*K normalised weights per location (B x K*K x h x w, softmax over the K*K axis, same
offset order and dilation as :func:`lowlatseg.propagation.svconv.sv_conv`).

What it sees: both frames' embedded low-level features, their absolute difference, and a
coarse correlation (cosine similarity at 3 x 3 offsets spread over the kernel's reach) that
tells it where content moved. With ``full_correlation`` it sees ``local_correlation`` at every
kernel tap instead: one operator per tap, about 2 ms a frame more on 2 cores (an option,
not the default).
"""

from __future__ import annotations

import math

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


def coarse_correlation(current: torch.Tensor, key: torch.Tensor, *, dilation: int) -> torch.Tensor:
    """B x C x h x w each -> B x 9 x h x w: dot products with the key at the 3 x 3 offsets
    (-d, 0, +d)^2 (offset order and borders as :func:`local_correlation`). Nine shifted
    products: on channels-last features this is ~9x faster on a CPU core than ``F.unfold``
    (0.24 against 2.1 ms for 16 x 45 x 60), which copies to channels-first first."""
    return local_correlation(current, key, kernel_size=3, dilation=dilation)


LEGACY_CENTRE_LOGIT = 3.0  # the initial centre logit when no centre weight is given (the bundled files)


def centre_logit(centre_weight: float, taps: int) -> float:
    """The centre logit (others 0) whose softmax over ``taps`` gives the centre ``centre_weight``."""
    return math.log(centre_weight * (taps - 1) / (1.0 - centre_weight))


class KernelPredictor(nn.Module):
    """(f_low_key, f_low_cur) -> B x K*K x h x w softmax weights.

    Both frames' low-level features are embedded by a shared 1x1 conv; a coarse correlation
    (cosine similarity at 3 x 3 offsets spread over the kernel's reach) tells the network where
    content moved; a small CNN on [current embedding, key embedding, |difference|, correlation]
    predicts the K*K logits. Built for the CPU: a handful of operators, none per kernel tap.

    With ``full_correlation`` the correlation is taken at every tap of the kernel (K*K shifted
    products, about 2 ms more at 45 x 60 on 2 cores) and also enters the logits directly, scaled
    by a learned factor: each tap's logit leans towards how well the key matches there.

    ``sharpness`` s (not learned; set after training, see ``train sharpness``): the kernel is
    ``softmax(s * logits)``, i.e. the trained kernel raised to the power s and renormalised; s > 1
    pulls each kernel's mass towards its largest taps.
    """

    def __init__(self, *, low_ch: int, kernel_size: int = 7, dilation: int = 2, embed_ch: int = 16, hidden: int = 32,
                 centre_weight: float | None = None, full_correlation: bool = False, sharpness: float = 1.0) -> None:
        super().__init__()
        if centre_weight is not None and not 0.0 < centre_weight < 1.0:
            raise ValueError(f"centre_weight {centre_weight} must be in (0, 1)")
        if not 0.0 < sharpness <= 100.0:
            raise ValueError(f"sharpness {sharpness} must be in (0, 100]")
        self.sharpness = float(sharpness)
        self.kernel_size, self.dilation = kernel_size, dilation
        kk = kernel_size * kernel_size
        # the coarse offsets sit half the reach out (at a reach of 3 cells: 1 cell; the refinement
        # convs see 3 cells further), so they resolve the small motions that dominate
        self.corr_dilation = max(1, kernel_size // 2 * dilation // 2)
        self.embed = nn.Conv2d(low_ch, embed_ch, 1)
        corr_ch = kk if full_correlation else 9
        # the direct matching term of the logits (full correlation only): cosine similarity x scale
        self.match_scale = nn.Parameter(torch.tensor(1.0)) if full_correlation else None
        body = [ConvBNReLU(3 * embed_ch + corr_ch, hidden, kernel=3), ConvBNReLU(hidden, hidden, kernel=3, dilation=2)]
        out = nn.Conv2d(hidden, kk, 1)
        # start as "stay where you are": the centre tap holds ``centre_weight`` of the kernel (None:
        # logit 3), the others share the rest, so training starts close to clockwork (with
        # full_correlation the matching term, scale 1 at the start, tilts that towards the taps
        # whose features match)
        nn.init.zeros_(out.weight)
        with torch.no_grad():
            assert out.bias is not None
            out.bias.zero_()
            out.bias[kk // 2] = LEGACY_CENTRE_LOGIT if centre_weight is None else centre_logit(centre_weight, kk)
        self.net = nn.Sequential(*body, out)

    def unit_embedding(self, f_low: torch.Tensor) -> torch.Tensor:
        """B x low_ch x h x w -> B x E x h x w matching embedding, unit length per location."""
        return F.normalize(self.embed(f_low), dim=1)

    def logits(self, f_low_key: torch.Tensor, f_low_cur: torch.Tensor, *, key_embedding: torch.Tensor | None = None) -> torch.Tensor:
        """B x K*K x h x w unnormalised kernel logits (``forward`` is their softmax over taps)."""
        ek = self.unit_embedding(f_low_key) if key_embedding is None else key_embedding
        ec = self.unit_embedding(f_low_cur)
        if self.match_scale is None:
            corr = coarse_correlation(ec, ek, dilation=self.corr_dilation)  # B x 9 x h x w
        else:
            corr = local_correlation(ec, ek, kernel_size=self.kernel_size, dilation=self.dilation)  # B x K*K x h x w
        logits = self.net(torch.cat([ec, ek, (ec - ek).abs(), corr], dim=1))
        return logits if self.match_scale is None else logits + self.match_scale * corr

    def forward(self, f_low_key: torch.Tensor, f_low_cur: torch.Tensor, *, key_embedding: torch.Tensor | None = None) -> torch.Tensor:
        """``key_embedding``: ``unit_embedding(f_low_key)`` if already computed (a keyframe serves many frames)."""
        logits = self.logits(f_low_key, f_low_cur, key_embedding=key_embedding)
        return torch.softmax(logits if self.sharpness == 1.0 else self.sharpness * logits, dim=1)
