"""The split network's contract, checked for every registered variant."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lowlatseg.nn.builders import VARIANTS, build, variant_config


@pytest.fixture(params=sorted(VARIANTS))
def net(request: pytest.FixtureRequest) -> torch.nn.Module:
    torch.manual_seed(0)
    return build(variant_config(request.param)).eval()


def test_composition_equals_whole_network(net: torch.nn.Module) -> None:
    x = torch.rand(2, 3, 72, 96)
    with torch.inference_mode():
        f_low = net.low(x)
        composed = net.head(net.high(f_low), net.low(x), out_size=(72, 96))
        whole = net(x)
    torch.testing.assert_close(composed, whole, rtol=0, atol=0)


@pytest.mark.parametrize("hw", [(72, 96), (45, 61), (360 // 4, 480 // 4)])
def test_shapes_and_stride(net: torch.nn.Module, hw: tuple[int, int]) -> None:
    c = net.config
    x = torch.rand(1, 3, *hw)
    grid = (-(-hw[0] // 8), -(-hw[1] // 8))
    with torch.inference_mode():
        f_low = net.low(x)
        f_high = net.high(f_low)
        logits = net.head(f_high, f_low)
        full = net(x)
    assert f_low.shape == (1, c.low_ch, *grid)
    assert f_high.shape == (1, c.high_ch, *grid)
    r = c.head_upsample
    assert logits.shape == (1, c.num_classes, grid[0] * r, grid[1] * r)
    assert full.shape == (1, c.num_classes, *hw)


def test_head_uses_current_low_features(net: torch.nn.Module) -> None:
    """Fusion: the same high-level features with another frame's low-level features change the output."""
    x1, x2 = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        f_high = net.high(net.low(x1))
        a = net.head(f_high, net.low(x1))
        b = net.head(f_high, net.low(x2))
    assert not torch.allclose(a, b)


def test_sub_pixel_head_starts_as_nearest_upsampling() -> None:
    """A head with ``upsample`` r starts with every sub-cell equal to its cell (ICNR): its logits are
    those of the same weights folded back to one output per class, nearest-upsampled by r; after a
    change of weights the sub-cells differ (the head can place a boundary inside a cell)."""
    from lowlatseg.nn.splitnet import Head

    torch.manual_seed(0)
    head = Head(low_ch=24, high_ch=16, fuse_ch=16, num_classes=5, upsample=2).eval()
    f_high, f_low = torch.rand(1, 16, 6, 7), torch.rand(1, 24, 6, 7)
    with torch.inference_mode():
        fine = head(f_high, f_low)
        fused = head.fuse(torch.cat([f_high, head.adapt(f_low)], dim=1))
        coarse = F.conv2d(fused, head.classify.weight[::4], head.classify.bias[::4])
    assert fine.shape == (1, 5, 12, 14)
    torch.testing.assert_close(fine, F.interpolate(coarse, scale_factor=2, mode="nearest"))
    with torch.no_grad():
        head.classify.weight[1::4] += 0.5  # the top-right sub-cell of every class
        moved = head(f_high, f_low)
    assert not torch.allclose(moved[..., 0::2, 1::2], moved[..., 0::2, 0::2])
    torch.testing.assert_close(moved[..., 1::2, :], fine[..., 1::2, :])


def test_unknown_variant_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="llnet-s"):
        variant_config("resnet-9000")


def test_default_split_cost_low_is_small() -> None:
    """In the default variant low and head are small and high is most of the network (so a
    propagated frame is cheap); counted in multiply-adds (stable, unlike time)."""
    from lowlatseg.checkpoint import load_model

    net = build(load_model().config).eval()
    macs: dict[str, int] = {"low": 0, "high": 0, "head": 0}

    def counter(part: str):
        def hook(mod: torch.nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            if isinstance(mod, torch.nn.Conv2d):
                k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
                macs[part] += out.numel() * k
        return hook

    for part in macs:
        for m in getattr(net, part).modules():
            m.register_forward_hook(counter(part))
    with torch.inference_mode():
        net(torch.rand(1, 3, 360, 480))
    total = sum(macs.values())
    assert macs["low"] / total < 0.25
    assert macs["head"] / total < 0.15
    assert macs["high"] / total > 0.7


def test_to_labels_equals_argmax() -> None:
    from lowlatseg.nn.splitnet import to_labels

    x = torch.randn(2, 11, 30, 40)
    x[0, 3, 0, 0] = x[0, 5, 0, 0] = 100.0  # a tie: both pick the first
    assert torch.equal(to_labels(x), x.argmax(1))


@pytest.mark.parametrize("shape", [(1, 3, 360, 480), (2, 3, 17, 31)])
def test_normalize_is_bit_identical_in_either_layout(shape: tuple[int, int, int, int]) -> None:
    from lowlatseg.nn.splitnet import normalize

    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = torch.rand(shape)
    plain = (x - mean) / std
    cl = normalize(x.contiguous(memory_format=torch.channels_last), mean, std)
    assert cl.is_contiguous(memory_format=torch.channels_last) and torch.equal(cl, plain)
    assert torch.equal(normalize(x, mean, std), plain)
