"""Small building blocks shared by the segmentation networks.

All blocks keep the NCHW layout and never change the batch size. Strides are
stated per block; padding is always "same" (``kernel // 2 * dilation``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Sequential):
    """``conv(k x k, stride, dilation) -> BatchNorm -> ReLU`` (ReLU optional)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        *,
        kernel: int = 3,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        relu: bool = True,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_ch,
                out_ch,
                kernel,
                stride=stride,
                padding=kernel // 2 * dilation,
                dilation=dilation,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_ch),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs and a shortcut (1x1 conv when shape changes).

    B x in_ch x H x W  ->  B x out_ch x ceil(H / stride) x ceil(W / stride)
    """

    def __init__(self, in_ch: int, out_ch: int, *, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(in_ch, out_ch, stride=stride, dilation=dilation)
        self.conv2 = ConvBNReLU(out_ch, out_ch, dilation=dilation, relu=False)
        self.shortcut: nn.Module = (
            nn.Identity()
            if stride == 1 and in_ch == out_ch
            else ConvBNReLU(in_ch, out_ch, kernel=1, stride=stride, relu=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.shortcut(x), inplace=True)


def stage(in_ch: int, out_ch: int, *, blocks: int, stride: int, dilation: int = 1) -> nn.Sequential:
    """``blocks`` basic blocks; the first one changes channels and stride."""
    layers = [BasicBlock(in_ch, out_ch, stride=stride, dilation=1 if stride > 1 else dilation)]
    layers += [BasicBlock(out_ch, out_ch, dilation=dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class PyramidPooling(nn.Module):
    """PSPNet-style context: average-pool to several grid sizes, project, upsample, concat.

    B x ch x H x W  ->  B x out_ch x H x W   (bins are output grid sizes, e.g. 1, 2, 3, 6)
    """

    def __init__(self, ch: int, out_ch: int, *, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.bins = bins
        branch_ch = ch // len(bins)
        self.branches = nn.ModuleList(ConvBNReLU(ch, branch_ch, kernel=1) for _ in bins)
        self.project = ConvBNReLU(ch + branch_ch * len(bins), out_ch, kernel=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [
            F.interpolate(branch(F.adaptive_avg_pool2d(x, b)), size=size, mode="bilinear", align_corners=False)
            for b, branch in zip(self.bins, self.branches)
        ]
        return self.project(torch.cat([x, *pooled], dim=1))
