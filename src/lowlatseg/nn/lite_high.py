"""``high`` built on the pretrained stages of an EfficientNet-Lite0, from stride 8 on.

f_low (B x low_ch x h x w, h, w = the stride-8 grid) -> f_high (B x high_ch x h x w):

1. ``adapt``: a 1x1 convolution (with BatchNorm, linear) maps ``f_low`` to the 40 channels the
   pretrained block 5 expects. ``low`` is trained to make this reproduce the pretrained front
   end's stride-8 features (``train base --distill-epochs``), then everything is fine-tuned.
2. ``blocks``: Lite0's blocks 5-15 (ImageNet-pretrained with ``train base --pretrained``):
   stride 16 after block 5 (80 ch), 112 ch after block 10, stride 32 after block 11 (192 ch),
   320 ch after block 15. With ``output_stride=16`` block 11 keeps stride 1 (the weights stay
   valid; about twice the cost of the last blocks).
3. A light decoder: pyramid pooling on the last features, then a top-down path with 1x1 laterals
   from block 10 (stride 16) and the adapted stride-8 features, each followed by a 3x3 conv,
   back to the stride-8 grid. Bilinear upsampling with ``align_corners=False``.

``steps`` yields after each block (13 slices) for the low-latency runtime's sliced executor.
"""

from __future__ import annotations

from collections.abc import Generator

import torch
import torch.nn.functional as F
from torch import nn

from lowlatseg.nn.blocks import ConvBNReLU, PyramidPooling
from lowlatseg.nn.efficientnet_lite import EfficientNetLite0, MBConv, lite0_blocks

FIRST_BLOCK = 5  # blocks before it (the stride-8 front end) are replaced by ``low``
TAP16 = 10  # the last block at stride 16: the decoder's stride-16 lateral
STRIDE32_BLOCK = 11  # the block that goes from stride 16 to 32


class LiteHigh(nn.Module):
    """S_h on Lite0's blocks 5-15; see the module doc. ``blocks[i]`` is Lite0's block ``5 + i``."""

    def __init__(self, *, low_ch: int, high_ch: int, output_stride: int = 32) -> None:
        super().__init__()
        if output_stride not in (16, 32):
            raise ValueError(f"output_stride must be 16 or 32, not {output_stride}")
        self.adapt = ConvBNReLU(low_ch, 40, kernel=1, relu=False)
        blocks = lite0_blocks()[FIRST_BLOCK:]
        if output_stride == 16:
            blocks[STRIDE32_BLOCK - FIRST_BLOCK]._depthwise_conv.stride = (1, 1)
        self.blocks = nn.ModuleList(blocks)
        self.context = PyramidPooling(320, high_ch)
        self.lateral16 = ConvBNReLU(112, high_ch, kernel=1, relu=False)
        self.lateral8 = ConvBNReLU(40, high_ch, kernel=1, relu=False)
        self.smooth16 = ConvBNReLU(high_ch, high_ch)
        self.smooth8 = ConvBNReLU(high_ch, high_ch)

    def forward(self, f_low: torch.Tensor) -> torch.Tensor:
        from lowlatseg.nn.splitnet import run_steps

        return run_steps(self.steps(f_low))

    def steps(self, f_low: torch.Tensor) -> Generator[None, None, torch.Tensor]:
        """``forward`` in slices of one block each; yields between slices, returns f_high."""
        x8 = self.adapt(f_low)  # B x 40 x h x w
        x = x8
        x16 = x8
        for i, block in enumerate(self.blocks):
            x = block(x)
            if FIRST_BLOCK + i == TAP16:
                x16 = x  # B x 112 x h/2 x w/2
            yield
        ctx = self.context(x)  # B x high_ch x h/4 x w/4 (h/2 x w/2 at output stride 16)
        y16 = self.smooth16(self.lateral16(x16) + _up(ctx, x16))
        yield
        return self.smooth8(self.lateral8(x8) + _up(y16, x8))  # B x high_ch x h x w

    def load_pretrained(self, net: EfficientNetLite0) -> int:
        """Copy Lite0's blocks 5-15 into ``blocks`` (exact names and shapes); returns the tensor count."""
        n = 0
        for i, block in enumerate(self.blocks):
            src: MBConv = net._blocks[FIRST_BLOCK + i]  # type: ignore[assignment]
            block.load_state_dict(src.state_dict(), strict=True)
            n += len(src.state_dict())
        return n


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)
