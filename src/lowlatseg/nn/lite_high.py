"""``high`` built on an ImageNet-pretrained EfficientNet-Lite (Lite0, Lite1 or Lite2), in two variants.

**On the frame** (``frame=True``; ``llnet-e`` on Lite0, ``llnet-e2`` on Lite2): ``low`` passes
the frame on inside ``f_low`` (its last 192 channels are the image, pixel-unshuffled by 8, see
:class:`~lowlatseg.nn.splitnet.FrameLow`), and ``high`` runs the *whole* pretrained backbone
(stem and every block) on it: all of its cost, front end included, is paid on keyframes only,
and every frame pays only for ``low``'s small learned part. Taps for the decoder
(:func:`~lowlatseg.nn.efficientnet_lite.taps`): the last block at stride 8 (Lite0: block 4, 40
ch), the last at stride 16 (block 10, 112 ch) and the last block (block 15, 320 ch, stride 32).

**Behind an adapter** (``frame=False``, ``llnet-d16``, Lite0 only): ``high`` starts at block 5 behind a 1x1
adapter, and ``low`` (from scratch) is trained to reproduce the front end's stride-8 features.
Measured on the held-out drive, this loses too much (model card); kept for reproducibility.

f_low (B x low_ch x h x w, h, w = the stride-8 grid) -> f_high (B x high_ch x h x w):

1. ``adapt``: a 1x1 convolution (with BatchNorm, linear) maps ``f_low`` to the 40 channels the
   pretrained block 5 expects. ``low`` is trained to make this reproduce the pretrained front
   end's stride-8 features (``train base --distill-epochs``), then everything is fine-tuned.
2. ``blocks``: Lite0's blocks 5-15 (ImageNet-pretrained with ``train base --pretrained``):
   stride 16 after block 5 (80 ch), 112 ch after block 10, stride 32 after block 11 (192 ch),
   320 ch after block 15. With ``output_stride=16`` block 11 keeps stride 1 (the weights stay
   valid; about twice the cost of the last blocks); ``dilation=2`` then dilates the depthwise
   convolutions of the blocks after it, so they see the context they were pretrained on
   (DeepLab's way; ``llnet-e-os16``).
3. A light decoder: pyramid pooling on the last features, then a top-down path with 1x1 laterals
   from block 10 (stride 16) and the adapted stride-8 features, each followed by a 3x3 conv,
   back to the stride-8 grid. Bilinear upsampling with ``align_corners=False``.

``steps`` yields after the stem and each block (13 yields behind the adapter; 18 on the frame,
23 for Lite1 and Lite2) for the low-latency runtime's
sliced executor.
"""

from __future__ import annotations

from collections.abc import Generator

import torch
import torch.nn.functional as F
from torch import nn

from lowlatseg.nn.blocks import ConvBNReLU, PyramidPooling
from lowlatseg.nn.efficientnet_lite import LITE_MEAN, LITE_STD, EfficientNetLite, MBConv, Stem, lite_blocks, taps

FIRST_BLOCK = 5  # Lite0 behind an adapter: blocks before it (the stride-8 front end) are replaced by ``low``
FRAME_CHANNELS = 3 * 8 * 8  # the frame inside f_low: RGB pixel-unshuffled by 8


class LiteHigh(nn.Module):
    """S_h on a pretrained Lite backbone; see the module doc. ``blocks[i]`` is the backbone's
    block ``first + i`` (``first`` = 0 on the frame, 5 behind the adapter)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, *, low_ch: int, high_ch: int, output_stride: int = 32, frame: bool = False,
                 variant: str = "lite0", dilation: int = 1) -> None:
        super().__init__()
        if output_stride not in (16, 32):
            raise ValueError(f"output_stride must be 16 or 32, not {output_stride}")
        if not frame and variant != "lite0":
            raise ValueError(f"the adapter variant of high exists for lite0 only, not {variant}")
        self.frame = frame
        self.variant = variant
        self.taps = t = taps(variant)
        self.first = 0 if frame else FIRST_BLOCK
        self.register_buffer("mean", torch.tensor(LITE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(LITE_STD).view(1, 3, 1, 1), persistent=False)
        self.stem: nn.Module = Stem() if frame else nn.Identity()
        self.adapt: nn.Module = nn.Identity() if frame else ConvBNReLU(low_ch, t.ch8, kernel=1, relu=False)
        blocks = lite_blocks(variant)[self.first:]
        if dilation != 1 and output_stride != 16:
            raise ValueError(f"dilation {dilation} needs output_stride 16")
        if output_stride == 16:
            blocks[t.to_stride32 - self.first]._depthwise_conv.stride = (1, 1)
            for block in blocks[t.to_stride32 - self.first + 1:]:
                block._depthwise_conv.dilation = (dilation, dilation)
        self.blocks = nn.ModuleList(blocks)
        self.context = PyramidPooling(t.ch_last, high_ch)
        self.lateral16 = ConvBNReLU(t.ch16, high_ch, kernel=1, relu=False)
        self.lateral8 = ConvBNReLU(t.ch8, high_ch, kernel=1, relu=False)
        self.smooth16 = ConvBNReLU(high_ch, high_ch)
        self.smooth8 = ConvBNReLU(high_ch, high_ch)

    def forward(self, f_low: torch.Tensor) -> torch.Tensor:
        from lowlatseg.nn.splitnet import run_steps

        return run_steps(self.steps(f_low))

    def steps(self, f_low: torch.Tensor) -> Generator[None, None, torch.Tensor]:
        """``forward`` in slices of one block each; yields between slices, returns f_high."""
        if self.frame:
            image = F.pixel_shuffle(f_low[:, -FRAME_CHANNELS:], 8)  # B x 3 x 8h x 8w, RGB [0, 1]
            x = self.stem((image - self.mean) / self.std)  # B x 32 x 4h x 4w
            x8 = x
            yield
        else:
            x = x8 = self.adapt(f_low)  # B x ch8 x h x w
        x16 = x8
        for i, block in enumerate(self.blocks):
            x = block(x)
            if self.first + i == self.taps.stride8:
                x8 = x  # B x ch8 x h x w
            if self.first + i == self.taps.stride16:
                x16 = x  # B x ch16 x h/2 x w/2
            yield
        ctx = self.context(x)  # B x high_ch x h/4 x w/4 (h/2 x w/2 at output stride 16)
        y16 = self.smooth16(self.lateral16(x16) + _up(ctx, x16))
        yield
        return self.smooth8(self.lateral8(x8) + _up(y16, x8))  # B x high_ch x h x w

    def load_pretrained(self, net: EfficientNetLite) -> int:
        """Copy the backbone's blocks (Lite0's 5-15, or the stem and every block on the frame) into
        this module (exact names and shapes); returns the tensor count."""
        if net.variant != self.variant:
            raise ValueError(f"this high is built on {self.variant}, not {net.variant}")
        n = 0
        if self.frame:
            assert isinstance(self.stem, Stem)
            self.stem.conv.load_state_dict(net._conv_stem.state_dict(), strict=True)
            self.stem.bn.load_state_dict(net._bn0.state_dict(), strict=True)
            n += len(net._conv_stem.state_dict()) + len(net._bn0.state_dict())
        for i, block in enumerate(self.blocks):
            src: MBConv = net._blocks[self.first + i]  # type: ignore[assignment]
            block.load_state_dict(src.state_dict(), strict=True)
            n += len(src.state_dict())
        return n


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)
