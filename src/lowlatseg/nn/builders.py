"""Builder functions: one per variant; they own all the numbers.

``build(name)`` is a plain dict lookup with a helpful error; go-to-definition on any
builder shows the exact variant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from lowlatseg.nn.splitnet import SplitNetConfig, SplitSegNet


def llnet_s(num_classes: int = 11) -> SplitNetConfig:
    """The lighter parent of the default `llnet-m` (its starting point): ~25 ms/frame at 360x480 on 2 cores, low ~15% of it."""
    return SplitNetConfig(arch="llnet-s", num_classes=num_classes)


def llnet_m(num_classes: int = 11) -> SplitNetConfig:
    """The default model: ``llnet-s`` with 12 more dilated residual blocks at stride 8 in ``high``.

    ~48 ms/frame at 360x480 on 2 cores as the runtime runs it (63 ms unfolded), ``high`` ~87% of it, so a propagated frame (``low``,
    propagation, ``head``) costs about 0.3 of a keyframe. Same widths as ``llnet-s``, so a
    trained ``llnet-s`` grows into it (``train base --init``).
    """
    dilations = (1, 1) + (2, 4, 8) * 4
    return SplitNetConfig(arch="llnet-m", num_classes=num_classes, mid_blocks=len(dilations), mid_dilations=dilations)


def llnet_tiny(num_classes: int = 11) -> SplitNetConfig:
    """A very small variant for tests and smoke runs (not for accuracy)."""
    return SplitNetConfig(
        arch="llnet-tiny",
        num_classes=num_classes,
        stem_ch=(8, 8),
        low_ch=16,
        low_blocks=0,
        mid_blocks=0,
        s16_ch=16,
        s16_blocks=1,
        s32_ch=32,
        s32_blocks=1,
        high_ch=16,
        fuse_ch=16,
    )


def llnet_e(num_classes: int = 11) -> SplitNetConfig:
    """The default model. ``high`` = the whole ImageNet-pretrained EfficientNet-Lite0 (stem and
    blocks 0-15, output stride 32) on the frame, which ``low`` passes on inside ``f_low``, with a
    light top-down decoder back to stride 8; ``low`` = the frame (192 channels) and a cheap
    learned stem (64 channels at stride 8) that the head fuses with the propagated features."""
    return SplitNetConfig(arch="llnet-e", num_classes=num_classes, stem_ch=(16, 32), low_ch=64 + 192, low_blocks=1,
                          backbone="lite0-frame", output_stride=32, high_ch=128, fuse_ch=128)


def llnet_e2(num_classes: int = 11) -> SplitNetConfig:
    """``llnet-e`` on EfficientNet-Lite2 (wider and deeper: 21 blocks, 352 channels at stride 32;
    the backbone took 1.2x Lite0's time at 360x480 on 2 threads, 2026-12-02): a costlier ``high``
    with better ImageNet features, same ``low`` and head."""
    return replace(llnet_e(num_classes), arch="llnet-e2", backbone="lite2-frame")


def llnet_e_os16(num_classes: int = 11) -> SplitNetConfig:
    """``llnet-e`` at output stride 16: Lite0's block 11 keeps stride 1 and the depthwise
    convolutions of blocks 12-15 are dilated by 2, so the last stage runs on a 4x larger grid with
    its pretrained receptive field (a costlier, finer ``high``; same ``low`` and head)."""
    return replace(llnet_e(num_classes), arch="llnet-e-os16", output_stride=16, high_dilation=2)


def llnet_e_sp(num_classes: int = 11) -> SplitNetConfig:
    """``llnet-e`` with a sub-pixel head: its classifier predicts 2 x 2 sub-cells per stride-8 cell
    (pixel shuffle), so the logits are on a stride-4 grid before the bilinear upsampling. The fused
    features hold the current frame's own pixels (``f_low``), so the head can place boundaries of
    thin objects (poles, people) inside a cell; it costs a wider 1x1 classifier (11 -> 44 outputs)
    on every frame, and labelling from a grid 4x larger."""
    return replace(llnet_e(num_classes), arch="llnet-e-sp", head_upsample=2)


def llnet_el(num_classes: int = 11) -> SplitNetConfig:
    """``llnet-e`` with a lean head: the head adapts the 256 channels of ``f_low`` to 64 before
    fusing them with ``f_high`` (``llnet-e`` keeps 256): the head then takes 0.46 of the time,
    about 1.2 ms less of a ~11 ms propagated frame on 2 threads (model card; not the default). Trained on ``llnet-e``'s frozen ``low`` and
    ``high`` (``train base --body-from``)."""
    return replace(llnet_e(num_classes), arch="llnet-el", adapt_ch=64)


def llnet_d16(num_classes: int = 11) -> SplitNetConfig:
    """Lite0's blocks 5-15 at output stride 16 behind a 1x1 adapter from a cheap from-scratch ``low``
    trained to reproduce Lite0's stride-8 features first (``train base --pretrained
    --distill-epochs``). Tried for the default and rejected: 41 mIoU on the held-out drive
    (model card)."""
    return SplitNetConfig(arch="llnet-d16", num_classes=num_classes, stem_ch=(24, 48), low_ch=64, low_blocks=1,
                          backbone="lite0", output_stride=16, high_ch=128, fuse_ch=128)


VARIANTS: dict[str, Callable[..., SplitNetConfig]] = {
    "llnet-s": llnet_s,
    "llnet-m": llnet_m,
    "llnet-tiny": llnet_tiny,
    "llnet-e": llnet_e,
    "llnet-el": llnet_el,
    "llnet-e-os16": llnet_e_os16,
    "llnet-e-sp": llnet_e_sp,
    "llnet-e2": llnet_e2,
    "llnet-d16": llnet_d16,
}


def variant_config(name: str, num_classes: int = 11) -> SplitNetConfig:
    """Config of the named variant; unknown names list the valid ones."""
    if name not in VARIANTS:
        raise ValueError(f"unknown architecture {name!r}; choose one of: {', '.join(VARIANTS)}")
    return VARIANTS[name](num_classes=num_classes)


def build(config: SplitNetConfig) -> SplitSegNet:
    """The network for a config (e.g. one read back from a checkpoint)."""
    return SplitSegNet(config)
