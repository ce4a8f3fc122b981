"""The split segmentation network: ``low`` -> ``high`` -> ``head``.

Conventions (every part of the project relies on them):

* ``image``: B x 3 x H x W float RGB in [0, 1]; normalisation happens inside ``low``.
* ``f_low = low(image)``: B x low_ch x ceil(H/8) x ceil(W/8). Cheap; run on every frame.
* ``f_high = high(f_low)``: B x high_ch x ceil(H/8) x ceil(W/8). Expensive (strides 16 and
  32 inside, pyramid pooling context); run on keyframes only. Same grid as ``f_low`` so it
  can be propagated between frames on the feature grid.
* ``head(f_high, f_low, out_size=(H, W))``: B x num_classes x H x W logits. Light; it fuses
  the (possibly propagated) high-level features with the *current* frame's low-level
  features, so keyframes and propagated frames share it. Without ``out_size`` the logits
  stay on the head's grid: the feature grid (stride 8), or with ``head_upsample`` r > 1 a grid r
  times finer (stride 8 / r), which the head predicts by a learned sub-pixel convolution.
* Upsampling is bilinear with ``align_corners=False`` everywhere.

The network holds no per-stream state; the runtime objects do.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from lowlatseg.nn.blocks import BasicBlock, ConvBNReLU, PyramidPooling, stage
from lowlatseg.nn.lite_high import FRAME_CHANNELS, LiteHigh

FRAME_BACKBONES = ("lite0-frame", "lite1-frame", "lite2-frame")  # high runs the whole pretrained backbone on the frame

T = TypeVar("T")

# ImageNet statistics are a reasonable fixed normalisation for RGB photographs.
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class SplitNetConfig:
    """All the numbers of one variant; saved inside every checkpoint."""

    arch: str = "llnet-s"  # builder name, for messages and strict loading
    num_classes: int = 11  # CamVid's 11 classes; void (255/11) is never predicted
    stem_ch: tuple[int, int] = (16, 32)  # widths of the two stride-2 stem convs (1/2, 1/4)
    low_ch: int = 64  # channels of f_low at stride 8
    low_blocks: int = 1  # residual blocks at stride 8 inside low (cost: every frame)
    mid_blocks: int = 2  # residual blocks at stride 8 inside high (local capacity)
    mid_dilations: tuple[int, ...] = ()  # dilation of each mid block; () means all 1
    s16_ch: int = 128  # stride-16 stage width
    s16_blocks: int = 3
    s32_ch: int = 192  # stride-32 stage width
    s32_blocks: int = 3
    high_ch: int = 128  # channels of f_high (what propagation moves around)
    fuse_ch: int = 128  # width of the head's fusion layer
    adapt_ch: int = 0  # channels the head's 1x1 adapts f_low to before fusing it (0: low_ch). Every frame pays
    # for the head: llnet-el adapts llnet-e's 256 channels to 64, about 1.2 ms less of a ~11 ms propagated frame
    backbone: str = "resnet"  # high: 'resnet' (basic blocks from scratch), 'lite0-frame' / 'lite1-frame' / 'lite2-frame'
    # (the whole pretrained EfficientNet-Lite on the frame, which low passes on in f_low) or 'lite0' (Lite0's blocks 5-15
    # behind an adapter)
    output_stride: int = 32  # lite backbones only: 16 keeps the block to stride 32 at stride 1 (more accurate, costlier)
    high_dilation: int = 1  # with output_stride 16: dilation of the depthwise convs after that block (2: DeepLab's way)
    head_upsample: int = 1  # r: the head's classifier predicts r x r sub-cells per grid cell (pixel shuffle), so its
    # logits are on a grid of stride 8 / r before the bilinear upsampling (1: stride 8, the classic head)


class Low(nn.Module):
    """S_l: image (B x 3 x H x W, RGB [0,1]) -> f_low (B x low_ch x H/8 x W/8)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, *, stem_ch: tuple[int, int], low_ch: int, blocks: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.stem = nn.Sequential(
            ConvBNReLU(3, stem_ch[0], stride=2),
            ConvBNReLU(stem_ch[0], stem_ch[1], stride=2),
            ConvBNReLU(stem_ch[1], low_ch, stride=2),
        )
        self.blocks = nn.Sequential(*(BasicBlock(low_ch, low_ch) for _ in range(blocks)))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(normalize(image, self.mean, self.std)))


class FrameLow(nn.Module):
    """S_l of the ``lite0-frame`` networks: a small learned :class:`Low` (``low_ch - 192`` channels)
    and the frame itself, pixel-unshuffled by 8 (192 channels: RGB in [0, 1] of each 8 x 8 cell),
    concatenated: B x 3 x H x W -> B x low_ch x ceil(H/8) x ceil(W/8). The frame channels are what
    ``high`` runs its pretrained backbone on; a frame whose sides are not multiples of 8 is padded
    at the bottom / right (replicate) first."""

    def __init__(self, *, stem_ch: tuple[int, int], low_ch: int, blocks: int) -> None:
        super().__init__()
        if low_ch <= FRAME_CHANNELS:
            raise ValueError(f"low_ch ({low_ch}) must exceed the {FRAME_CHANNELS} frame channels")
        self.learned = Low(stem_ch=stem_ch, low_ch=low_ch - FRAME_CHANNELS, blocks=blocks)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        ph, pw = -h % 8, -w % 8
        padded = F.pad(image, (0, pw, 0, ph), mode="replicate") if ph or pw else image
        return torch.cat([self.learned(image), F.pixel_unshuffle(padded, 8)], dim=1)


class High(nn.Module):
    """S_h: f_low (B x low_ch x h x w) -> f_high (B x high_ch x h x w), h, w = stride-8 grid.

    A small encoder to strides 16 and 32 with pyramid pooling, brought back to the
    stride-8 grid by a top-down path (FPN-style lateral 1x1 convs + upsampling).
    """

    def __init__(
        self,
        *,
        low_ch: int,
        mid_blocks: int,
        mid_dilations: tuple[int, ...] = (),
        s16_ch: int,
        s16_blocks: int,
        s32_ch: int,
        s32_blocks: int,
        high_ch: int,
    ) -> None:
        super().__init__()
        dilations = mid_dilations or (1,) * mid_blocks
        if len(dilations) != mid_blocks:
            raise ValueError(f"mid_dilations has {len(dilations)} entries for {mid_blocks} mid blocks")
        self.mid = nn.Sequential(*(BasicBlock(low_ch, low_ch, dilation=d) for d in dilations))
        self.s16 = stage(low_ch, s16_ch, blocks=s16_blocks, stride=2)
        self.s32 = stage(s16_ch, s32_ch, blocks=s32_blocks, stride=2, dilation=1)
        self.context = PyramidPooling(s32_ch, high_ch)
        self.lateral16 = ConvBNReLU(s16_ch, high_ch, kernel=1, relu=False)
        self.lateral8 = ConvBNReLU(low_ch, high_ch, kernel=1, relu=False)
        self.smooth16 = ConvBNReLU(high_ch, high_ch)
        self.smooth8 = ConvBNReLU(high_ch, high_ch)

    def forward(self, f_low: torch.Tensor) -> torch.Tensor:
        return run_steps(self.steps(f_low))

    def steps(self, f_low: torch.Tensor) -> Generator[None, None, torch.Tensor]:
        """``forward`` in slices of about one residual block (~2 ms each for llnet-m at 360x480
        on 2 cores; 22 slices, 21 yields): a generator that yields after each slice and returns f_high.
        The low-latency runtime runs a keyframe's ``high`` this way between frames
        (runtime/sliced.py)."""
        x8 = f_low
        for block in self.mid:
            x8 = block(x8)  # B x low_ch x h x w
            yield
        x16 = x8
        for block in self.s16:
            x16 = block(x16)  # B x s16_ch x h/2 x w/2
            yield
        x32 = x16
        for block in self.s32:
            x32 = block(x32)  # B x s32_ch x h/4 x w/4
            yield
        ctx = self.context(x32)  # B x high_ch x h/4 x w/4
        y16 = self.smooth16(self.lateral16(x16) + _up(ctx, x16))
        yield
        return self.smooth8(self.lateral8(x8) + _up(y16, x8))  # B x high_ch x h x w


class Head(nn.Module):
    """Fuses f_high with the current frame's f_low and classifies.

    f_high: B x high_ch x h x w, f_low: B x low_ch x h x w -> logits B x num_classes x (out_size or
    h*r x w*r, r = ``upsample``, 1 unless the variant sets ``head_upsample``).
    Either layout in; with a channels-last ``f_low`` (the inference copy) ``f_high`` is brought to it.
    """

    def __init__(self, *, low_ch: int, high_ch: int, fuse_ch: int, num_classes: int, adapt_ch: int = 0,
                 upsample: int = 1) -> None:
        """``adapt_ch``: channels f_low is adapted to before the fusion (0: ``low_ch``). ``upsample`` r:
        the classifier gives r x r sub-cell logits per cell, pixel-shuffled to a grid r times finer
        (initialised so that every sub-cell starts with its cell's logits: nearest upsampling, ICNR)."""
        super().__init__()
        if upsample < 1:
            raise ValueError(f"head upsample must be at least 1, not {upsample}")
        self.upsample = upsample
        adapt_ch = adapt_ch or low_ch
        self.adapt = ConvBNReLU(low_ch, adapt_ch, kernel=1)
        cat_ch = high_ch + adapt_ch
        self.fuse = nn.Sequential(
            ConvBNReLU(cat_ch, cat_ch, groups=cat_ch),  # depthwise 3x3: local alignment
            ConvBNReLU(cat_ch, fuse_ch, kernel=1),
        )
        self.classify = nn.Conv2d(fuse_ch, num_classes * upsample * upsample, 1)
        if upsample > 1:
            with torch.no_grad():  # ICNR: the r*r sub-cells of class c (channels c*r*r ...) start equal
                one = nn.Conv2d(fuse_ch, num_classes, 1)
                self.classify.weight.copy_(one.weight.repeat_interleave(upsample * upsample, dim=0))
                assert self.classify.bias is not None and one.bias is not None
                self.classify.bias.copy_(one.bias.repeat_interleave(upsample * upsample, dim=0))

    def forward(
        self, f_high: torch.Tensor, f_low: torch.Tensor, out_size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        adapted = self.adapt(f_low)
        cl = torch.channels_last
        if adapted.is_contiguous(memory_format=cl) and not f_high.is_contiguous(memory_format=cl):
            # the inference copy runs channels-last, but propagated features can come NCHW (grid_sample's
            # output): a concatenation of mixed layouts, and the depthwise conv after it, are slower
            # than in one layout (measured in docs/runtime.md)
            f_high = f_high.contiguous(memory_format=cl)
        logits = self.classify(self.fuse(torch.cat([f_high, adapted], dim=1)))
        if self.upsample > 1:
            logits = F.pixel_shuffle(logits, self.upsample)  # B x num_classes x h*r x w*r
        if out_size is not None:
            logits = F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
        return logits


class SplitSegNet(nn.Module):
    """The whole network; ``forward(image) == head(high(low(image)), low(image), out_size=(H, W))``."""

    def __init__(self, config: SplitNetConfig) -> None:
        super().__init__()
        c = config
        self.config = config
        self.low: Low | FrameLow
        if c.backbone in FRAME_BACKBONES:
            self.low = FrameLow(stem_ch=c.stem_ch, low_ch=c.low_ch, blocks=c.low_blocks)
        else:
            self.low = Low(stem_ch=c.stem_ch, low_ch=c.low_ch, blocks=c.low_blocks)
        self.high: High | LiteHigh
        if c.backbone == "lite0" or c.backbone in FRAME_BACKBONES:
            self.high = LiteHigh(low_ch=c.low_ch, high_ch=c.high_ch, output_stride=c.output_stride,
                                 frame=c.backbone in FRAME_BACKBONES, variant=c.backbone.split("-")[0],
                                 dilation=c.high_dilation)
        elif c.backbone != "resnet":
            raise ValueError(f"unknown backbone {c.backbone!r}; choose resnet, lite0, {', '.join(FRAME_BACKBONES)}")
        else:
            self.high = High(
                low_ch=c.low_ch,
                mid_blocks=c.mid_blocks,
                mid_dilations=c.mid_dilations,
                s16_ch=c.s16_ch,
                s16_blocks=c.s16_blocks,
                s32_ch=c.s32_ch,
                s32_blocks=c.s32_blocks,
                high_ch=c.high_ch,
            )
        self.head = Head(low_ch=c.low_ch, high_ch=c.high_ch, fuse_ch=c.fuse_ch, num_classes=c.num_classes,
                         adapt_ch=c.adapt_ch, upsample=c.head_upsample)

    @property
    def learned_low_ch(self) -> int:
        """The leading channels of f_low that are learned features (the rest, in ``lite0-frame``
        networks, is the frame itself): what the deviation predictor reads."""
        return self.config.low_ch - FRAME_CHANNELS if self.config.backbone in FRAME_BACKBONES else self.config.low_ch

    @property
    def stride(self) -> int:
        """Stride of the feature grid of ``f_low`` and ``f_high``."""
        return 8

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        f_low = self.low(image)
        return self.head(self.high(f_low), f_low, out_size=(image.shape[-2], image.shape[-1]))


def normalize(image: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(image - mean) / std`` per channel (mean, std: 1 x 3 x 1 x 1), in the image's layout.

    A channels-last image is an H x W*3 matrix in memory; broadcasting a 3-vector over its
    innermost axis of 3 is not vectorised on a CPU (0.88 ms at 360x480 on one core), so it is
    done against the mean and std repeated along a whole row instead (0.13 ms). The same
    operations on the same numbers: bit-identical to the plain broadcast (tested).
    """
    b, c, h, w = image.shape
    if c != 3 or not image.is_contiguous(memory_format=torch.channels_last) or image.is_contiguous():
        return (image - mean) / std
    rows = image.permute(0, 2, 3, 1).reshape(b * h, w * c)  # a view: the channels-last memory
    out = (rows - mean.reshape(c).repeat(w)) / std.reshape(c).repeat(w)
    return out.view(b, h, w, c).permute(0, 3, 1, 2)


def to_labels(logits: torch.Tensor) -> torch.Tensor:
    """B x C x H x W logits -> B x H x W int64 class ids (first maximum on ties, like argmax).

    ``max(1).indices`` rather than ``argmax(1)``: the same result, but PyTorch 2.13's CPU argmax
    over the channel axis of an NCHW tensor took 13 ms at 11 x 360 x 480 against 1.3 ms here.
    """
    return logits.max(1).indices


def run_steps(steps: Generator[None, None, T]) -> T:
    """Runs a generator of slices (such as :meth:`High.steps`) to the end; returns its value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)
