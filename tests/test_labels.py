"""upsampled_labels is the argmax of the head's bilinear upsampling, computed mostly on the grid."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lowlatseg.nn.labels import upsampled_labels
from lowlatseg.nn.splitnet import to_labels


def _reference(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return to_labels(F.interpolate(logits, size=size, mode="bilinear", align_corners=False))


def _smooth_logits(b: int, c: int, h: int, w: int, seed: int) -> torch.Tensor:
    """Class regions a few cells wide with noisy boundaries, like a segmentation head's output."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(b, c, max(2, h // 4), max(2, w // 4), generator=g)
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False) + 0.1 * torch.randn(b, c, h, w, generator=g)


@pytest.mark.parametrize(("grid", "size"), [
    ((45, 60), (360, 480)),  # the default: stride 8
    ((45, 60), (361, 479)),  # not a whole multiple
    ((68, 120), (540, 960)),  # ceil(540 / 8) = 68: 'native' 960x540
    ((10, 7), (100, 37)),  # different factors per axis
    ((1, 1), (8, 8)),  # one cell
    ((2, 3), (2, 50)),  # one axis not upsampled
    ((45, 60), (45, 60)),  # no upsampling
    ((5, 5), (3, 4)),  # downsampling: the plain path
])
def test_equals_upsample_then_argmax(grid: tuple[int, int], size: tuple[int, int]) -> None:
    logits = _smooth_logits(2, 11, *grid, seed=grid[0] * 100 + size[1])
    got = upsampled_labels(logits, size)
    assert got.shape == (2, *size) and got.dtype == torch.int64
    assert torch.equal(got, _reference(logits, size))


def test_boundary_pixels_are_really_interpolated() -> None:
    """Two classes whose boundary falls inside a cell: the nearest corner's label would be wrong
    for part of it, the bilinear argmax is not."""
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 0, :, 0], logits[0, 1, :, 1] = 1.0, 3.0  # class 1 wins from a quarter of the way across
    got = upsampled_labels(logits, (16, 16))
    ref = _reference(logits, (16, 16))
    assert torch.equal(got, ref)
    assert 0 < int((ref == 1).sum()) < ref.numel() and not torch.equal(got, got[:, :, :1].expand_as(got))


def test_real_network_logits(tiny_net_logits: torch.Tensor) -> None:
    assert torch.equal(upsampled_labels(tiny_net_logits, (96, 128)), _reference(tiny_net_logits, (96, 128)))


@pytest.fixture
def tiny_net_logits() -> torch.Tensor:
    from lowlatseg.nn.builders import build, variant_config

    torch.manual_seed(0)
    net = build(variant_config("llnet-tiny")).eval()
    x = torch.rand(2, 3, 96, 128)
    with torch.inference_mode():
        f_low = net.low(x)
        return net.head(net.high(f_low), f_low)
