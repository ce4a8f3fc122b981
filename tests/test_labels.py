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
@pytest.mark.parametrize("impl", ["auto", "tensor"])
def test_equals_upsample_then_argmax(grid: tuple[int, int], size: tuple[int, int], impl: str) -> None:
    logits = _smooth_logits(2, 11, *grid, seed=grid[0] * 100 + size[1])
    got = upsampled_labels(logits, size, impl=impl)
    assert got.shape == (2, *size) and got.dtype == torch.int64
    assert torch.equal(got, _reference(logits, size))


@pytest.mark.parametrize(("grid", "size"), [((45, 60), (360, 480)), ((68, 120), (540, 960)), ((10, 7), (100, 37)),
                                            ((1, 1), (8, 8)), ((2, 3), (2, 50)), ((45, 60), (45, 60)), ((3, 5), (7, 11))])
@pytest.mark.parametrize("channels_last", [False, True])
def test_compiled_loop_is_bit_identical_to_the_tensor_version(grid: tuple[int, int], size: tuple[int, int],
                                                              channels_last: bool) -> None:
    """Noisy logits (boundaries in most cells, near-ties), both memory layouts, a batch of 3:
    the same labels bit for bit, in int64 and uint8."""
    g = torch.Generator().manual_seed(grid[0] + size[1])
    logits = _smooth_logits(3, 11, *grid, seed=size[0]) + 0.5 * torch.randn(3, 11, *grid, generator=g)
    if channels_last:
        logits = logits.contiguous(memory_format=torch.channels_last)
    tensor = upsampled_labels(logits, size, impl="tensor")
    compiled = upsampled_labels(logits, size, impl="compiled")
    assert compiled.dtype == torch.int64 and torch.equal(compiled, tensor)
    small = upsampled_labels(logits, size, impl="compiled", dtype=torch.uint8)
    assert small.dtype == torch.uint8 and torch.equal(small.long(), tensor)


def test_ties_take_the_first_class_in_both() -> None:
    logits = torch.zeros(1, 5, 4, 4)
    logits[0, 3, :, 2:] = 1.0  # class 3 on the right half, a 5-way tie (class 0) on the left
    for impl in ("tensor", "compiled"):
        got = upsampled_labels(logits, (32, 32), impl=impl)
        assert torch.equal(got, _reference(logits, (32, 32))), impl
        assert int(got[0, 0, 0]) == 0 and int(got[0, 0, -1]) == 3


def test_compiled_loop_refuses_what_it_cannot_do() -> None:
    logits = torch.randn(1, 3, 4, 4)
    with pytest.raises(ValueError, match="impl must be one of"):
        upsampled_labels(logits, (8, 8), impl="fast")
    for bad, size in [(logits.double(), (8, 8)), (logits, (2, 2)), (torch.randn(1, 300, 4, 4), (8, 8)),
                      (logits.clone().requires_grad_(), (8, 8))]:
        with pytest.raises(ValueError, match="compiled label map"):
            upsampled_labels(bad, size, impl="compiled")
        assert torch.equal(upsampled_labels(bad, size), _reference(bad.detach(), size))  # auto: the tensor version


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


def _near_ties(seed: int) -> torch.Tensor:
    """Classes 0 and 1 one float32 step apart in relative size (class 1 = class 0 x (1 + 2**-22)):
    their order flips with the sign of class 0, so most cells are boundary cells, and which one
    wins an interpolated pixel depends on the last bit of the float32 arithmetic."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(2, 1, 12, 16, generator=g)
    third = torch.randn(2, 1, 12, 16, generator=g) - 1.5
    return torch.cat([base, base * (1 + 2.0**-22), third], dim=1)


def test_compiled_loop_rounds_like_the_tensor_version() -> None:
    """On near-ties the label depends on float32 rounding: a loop computing in float64, or
    fusing multiply and add, gives other labels here (checked by hand with such variants)."""
    for seed in range(3):
        logits = _near_ties(seed)
        assert torch.equal(upsampled_labels(logits, (96, 128), impl="compiled"),
                           upsampled_labels(logits, (96, 128), impl="tensor"))


def test_interpolated_ties_take_the_first_class() -> None:
    """Classes 0 and 1 equal everywhere, class 2 winning some corners: every interpolated pixel
    where 0 and 1 beat 2 is an exact tie between them and must get class 0."""
    g = torch.Generator().manual_seed(3)
    shared = torch.randn(1, 1, 6, 6, generator=g)
    logits = torch.cat([shared, shared, torch.randn(1, 1, 6, 6, generator=g)], dim=1)
    for impl in ("tensor", "compiled"):
        got = upsampled_labels(logits, (48, 48), impl=impl)
        assert torch.equal(got, _reference(logits, (48, 48))), impl
        assert not (got == 1).any() and (got == 0).any() and (got == 2).any()


def test_infinities_and_nan_as_the_tensor_version() -> None:
    """A NaN logit wins (torch.max's rule) and 0 * inf makes NaN in the interpolation: the
    compiled loop follows the tensor version there too."""
    logits = _smooth_logits(2, 5, 8, 10, seed=4)
    logits[0, :, 3] = float("-inf")  # a whole grid row of -inf: NaN where its weight is 0
    logits[1, 2, 5, 5] = float("nan")
    logits[1, 4, 1, 1:4] = float("inf")
    for size in [(64, 80), (8, 80), (61, 79)]:
        assert torch.equal(upsampled_labels(logits, size, impl="compiled"), upsampled_labels(logits, size, impl="tensor"))


def test_auto_runs_the_compiled_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    from lowlatseg.nn import labels_kernel

    calls = []
    real = labels_kernel.labels_nhwc
    monkeypatch.setattr(labels_kernel, "labels_nhwc", lambda *a: (calls.append(1), real(*a))[1])
    logits = _smooth_logits(1, 11, 45, 60, seed=5)
    with torch.inference_mode():
        upsampled_labels(logits, (360, 480), dtype=torch.uint8)  # what the runtime asks for
    upsampled_labels(logits, (360, 480), impl="compiled")
    assert len(calls) == 2
    upsampled_labels(logits, (360, 480), impl="tensor")
    upsampled_labels(logits, (30, 40))  # downsampling: the tensor version
    assert len(calls) == 2


def test_uint8_labels_refuse_more_than_256_classes() -> None:
    with pytest.raises(ValueError, match="at most 256 classes"):
        upsampled_labels(torch.randn(1, 300, 4, 4), (8, 8), dtype=torch.uint8)
    with pytest.raises(ValueError, match="compiled label map"):
        upsampled_labels(torch.randn(1, 0, 4, 4), (8, 8), impl="compiled")
