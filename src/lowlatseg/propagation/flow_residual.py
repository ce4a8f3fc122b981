"""Flow-residual propagation: DIS flow for the motion, a learned residual for what flow gets wrong.

Beyond the paper, and beyond :mod:`~lowlatseg.propagation.flow_guided` (whose learned kernels
can only re-mix the warped features of nearby cells, which adds nothing measurable to the flow
warp). Here a small network *adds* a correction to the warped high-level features:

1. backward DIS flow current -> key on the grey frames, area-averaged to the feature grid
   (as :class:`~lowlatseg.propagation.methods.FlowWarp`); the keyframe's ``f_high`` and its
   ``f_low`` are warped by it in one sampling pass;
2. the correction network sees the warped ``f_high``, the current frame's learned low-level
   features, their difference to the warped keyframe's, and (for networks whose ``f_low``
   carries the frame, :class:`~lowlatseg.nn.splitnet.FrameLow`) the per-cell colour change
   between the current frame and the warped keyframe (mean and mean absolute difference per
   RGB channel): where the warp went wrong (occlusion, new content, a flow error) these differ;
3. ``f_high_t ~ warped + delta``: ``delta`` from a 1x1 convolution to ``residual_hidden``
   channels, two depthwise 3x3 convolutions (dilation 1, 2: a 7 x 7-cell view), and a 1x1
   convolution back to ``high_ch`` that starts at zero, so the untrained method *is* the flow
   warp and training moves it from there.

In short: a first-order model of how ``high`` would have changed its output given how the
low-level features changed, learned by distillation from the per-frame network
(``train propagation``). Shapes: every feature map is B x C x h x w on the stride-8 grid.
"""

from __future__ import annotations

import torch
from torch import nn

from lowlatseg.nn.blocks import ConvBNReLU
from lowlatseg.propagation.flow import DISFlow
from lowlatseg.propagation.methods import Current, KeyState, PropagationConfig, _Base, flow_warp_with_low

COLOUR_STATS = 6  # mean and mean |difference| of each RGB channel over a cell's 8 x 8 pixels


class FlowResidual(_Base):
    """Warp by DIS flow, then add a learned correction (see the module doc).

    ``low_ch``: channels of ``f_low``; ``learned_ch``: how many of them are learned features
    (the rest, if any, is the frame pixel-unshuffled by 8: ``SplitSegNet.learned_low_ch``);
    ``high_ch``: channels of ``f_high``."""

    name = "flow-residual"

    def __init__(self, cfg: PropagationConfig, *, low_ch: int, learned_ch: int, high_ch: int) -> None:
        super().__init__()
        if not 0 < learned_ch <= low_ch:
            raise ValueError(f"learned_ch {learned_ch} must be in 1..low_ch ({low_ch})")
        frame_ch = low_ch - learned_ch
        if frame_ch not in (0, 3 * 64):
            raise ValueError(f"f_low's frame part has {frame_ch} channels; expected 0 or 192 (RGB unshuffled by 8)")
        self.flow = DISFlow(cfg.flow_preset, cfg.flow_downscale)
        self.learned_ch, self.high_ch = learned_ch, high_ch
        self.colour = frame_ch > 0
        hidden = cfg.residual_hidden
        inputs = high_ch + 2 * learned_ch + (COLOUR_STATS if self.colour else 0)
        self.net = nn.Sequential(
            ConvBNReLU(inputs, hidden, kernel=1),
            ConvBNReLU(hidden, hidden, groups=hidden),
            ConvBNReLU(hidden, hidden, groups=hidden, dilation=2),
        )
        self.out = nn.Conv2d(hidden, high_ch, 1)
        nn.init.zeros_(self.out.weight)  # delta 0 at the start: the flow warp
        assert self.out.bias is not None
        nn.init.zeros_(self.out.bias)

    def correction_inputs(self, moved: torch.Tensor, moved_low: torch.Tensor, cur_low: torch.Tensor) -> torch.Tensor:
        """B x (high_ch + 2 learned_ch [+ 6]) x h x w: what the correction network sees."""
        n = self.learned_ch
        parts = [moved, cur_low[:, :n], cur_low[:, :n] - moved_low[:, :n]]
        if self.colour:
            b, _, h, w = cur_low.shape
            change = (cur_low[:, n:] - moved_low[:, n:]).reshape(b, 3, 64, h, w)  # pixel_unshuffle: colour-major
            parts += [change.mean(2), change.abs().mean(2)]
        return torch.cat(parts, dim=1)

    def warp(self, key: KeyState, cur: Current, features: torch.Tensor) -> torch.Tensor:
        """Flow-warps ``features`` (B x C x h x w, C >= high_ch) and corrects their first
        ``high_ch`` channels (``f_high``); further channels (warped ``f_low`` without fusion) stay warped."""
        c = features.shape[1]
        if c < self.high_ch:
            raise ValueError(f"features have {c} channels; flow-residual corrects the first {self.high_ch} (f_high)")
        moved, moved_low = flow_warp_with_low(self.flow, key, cur, features)
        high = moved[:, : self.high_ch]
        delta = self.out(self.net(self.correction_inputs(high, moved_low, cur.f_low)))
        corrected = high + delta
        return corrected if c == self.high_ch else torch.cat([corrected, moved[:, self.high_ch :]], dim=1)
