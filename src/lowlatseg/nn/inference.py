"""An inference copy of a trained module: BatchNorm folded into its convolution, channels-last.

``for_inference(module)`` returns a copy in eval mode that computes the same function (to float
rounding) faster on a CPU:

* every ``conv -> BatchNorm`` pair of a :class:`~lowlatseg.nn.blocks.ConvBNReLU` (and the three
  pairs of each EfficientNet-Lite :class:`~lowlatseg.nn.efficientnet_lite.MBConv`) becomes one
  convolution with the normalisation folded into its weights and bias (one pass over the
  feature map less per layer);
* parameters are stored channels-last (NHWC), the layout oneDNN's CPU convolutions run fastest
  in; a convolution given a channels-last weight returns channels-last output, so the features
  stay in that layout from the first convolution on (feed images with
  ``x.contiguous(memory_format=torch.channels_last)`` to include the first layer).

On the 2-core CPU this made ``llnet-m``'s propagated-frame path about 25 % faster and ``high``
about 7 % faster (docs/runtime.md). The original module is not touched; checkpoints keep the
training layout. Training must use the original: a folded copy has no BatchNorm to update.
"""

from __future__ import annotations

import copy
from typing import TypeVar

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from lowlatseg.nn.blocks import ConvBNReLU
from lowlatseg.nn.efficientnet_lite import MBConv, Stem

M = TypeVar("M", bound=nn.Module)


def for_inference(module: M) -> M:
    """An eval-mode copy with BatchNorm folded and channels-last parameters (see the module doc).
    A module without parameters (e.g. flow warping, which holds an OpenCV object) has nothing to
    change and is returned itself."""
    if next(module.parameters(), None) is None:
        return module
    out = copy.deepcopy(module).eval()
    for m in out.modules():
        if isinstance(m, ConvBNReLU) and isinstance(m[1], nn.BatchNorm2d):
            conv, bn = m[0], m[1]
            assert isinstance(conv, nn.Conv2d)
            m[0] = fuse_conv_bn_eval(conv, bn)
            m[1] = nn.Identity()
        elif isinstance(m, Stem) and isinstance(m.bn, nn.BatchNorm2d):
            m.conv = fuse_conv_bn_eval(m.conv, m.bn)
            m.bn = nn.Identity()  # type: ignore[assignment]
        elif isinstance(m, MBConv):
            for conv_name, bn_name in (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")):
                norm = getattr(m, bn_name, None)
                if isinstance(norm, nn.BatchNorm2d):
                    setattr(m, conv_name, fuse_conv_bn_eval(getattr(m, conv_name), norm))
                    setattr(m, bn_name, nn.Identity())
    return out.to(memory_format=torch.channels_last)  # type: ignore[call-overload, no-any-return]
