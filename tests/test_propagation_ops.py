"""Invariants of the propagation maths: the spatially variant convolution, flow warping, methods."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lowlatseg.nn.builders import build, llnet_tiny
from lowlatseg.propagation.flow import DISFlow, flow_to_grid, warp
from lowlatseg.propagation.methods import (
    Adaptive, Clockwork, Current, FlowWarp, ImageDifference, KeyState, PropagationConfig, Propagator, Uniform, all_methods,
)
from lowlatseg.propagation.predictor import KernelPredictor
from lowlatseg.propagation.produce import make_key, propagated_logits
from lowlatseg.propagation.svconv import delta_weights, sv_conv, sv_conv_reference


@pytest.mark.parametrize("k, d", [(3, 1), (5, 2), (9, 2)])
def test_fast_matches_reference_values_and_gradients(k: int, d: int) -> None:
    torch.manual_seed(0)
    f = torch.randn(2, 5, 9, 11, dtype=torch.float64, requires_grad=True)
    w = torch.softmax(torch.randn(2, k * k, 9, 11, dtype=torch.float64), 1).requires_grad_()
    fast = sv_conv(f, w, kernel_size=k, dilation=d)
    ref = sv_conv_reference(f, w, kernel_size=k, dilation=d)
    torch.testing.assert_close(fast, ref)
    g = torch.randn_like(fast)
    gf, gw = torch.autograd.grad((fast * g).sum(), (f, w))
    rf, rw = torch.autograd.grad((ref * g).sum(), (f, w))
    torch.testing.assert_close(gf, rf)
    torch.testing.assert_close(gw, rw)


PATHS = ("compiled", "loop")


def run_sv_conv(path: str, f: torch.Tensor, w: torch.Tensor, **kw: int) -> torch.Tensor:
    """sv_conv through one of its two implementations, without gradients: the compiled loop
    (inference) or the tensor loop (which training uses)."""
    with torch.inference_mode():
        return sv_conv(f, w, impl=path, **kw)


@pytest.mark.parametrize("k, d", [(3, 1), (5, 2), (7, 2), (9, 3)])
@pytest.mark.parametrize("layout", ["contiguous", "channels-last"])
def test_compiled_path_matches_reference_and_loop(k: int, d: int, layout: str) -> None:
    torch.manual_seed(1)
    f, w = torch.randn(2, 6, 9, 13), torch.softmax(torch.randn(2, k * k, 9, 13), 1)
    if layout == "channels-last":
        f, w = f.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last)
    fast = run_sv_conv("compiled", f, w, kernel_size=k, dilation=d)
    assert fast.shape == f.shape and fast.dtype == torch.float32
    assert fast.is_contiguous(memory_format=torch.channels_last)  # as documented: the runtime's layout
    torch.testing.assert_close(fast, sv_conv_reference(f, w, kernel_size=k, dilation=d))
    torch.testing.assert_close(fast, run_sv_conv("loop", f, w, kernel_size=k, dilation=d))


@pytest.mark.parametrize("case", ["batch-1 weights", "one kernel everywhere", "sliced features", "map smaller than reach"])
def test_compiled_path_handles_broadcasts_views_and_small_maps(case: str) -> None:
    torch.manual_seed(2)
    f, w = torch.randn(3, 5, 8, 10), torch.softmax(torch.randn(1, 25, 8, 10), 1)
    if case == "one kernel everywhere":
        w = torch.softmax(torch.randn(1, 25, 1, 1), 1)
    elif case == "sliced features":
        f = torch.randn(3, 9, 16, 10)[:, 2:7, ::2]  # a strided view, neither layout
    elif case == "map smaller than reach":
        f, w = f[:, :, :2, :3], w[:, :, :2, :3]  # reach 2 * 3 = 6 taps beyond a 2 x 3 map
    kw = {"kernel_size": 5, "dilation": 3}
    torch.testing.assert_close(run_sv_conv("compiled", f, w, **kw), sv_conv_reference(f, w, **kw))


def test_loop_without_gradients_matches_reference_in_float64() -> None:
    """float64 never takes the compiled loop: the tensor loop's in-place branch, checked."""
    f, w = torch.randn(2, 4, 7, 9, dtype=torch.float64), torch.softmax(torch.randn(2, 25, 7, 9, dtype=torch.float64), 1)
    with torch.no_grad():
        out = sv_conv(f, w, kernel_size=5, dilation=2)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, sv_conv_reference(f, w, kernel_size=5, dilation=2))


def test_compiled_path_is_taken_only_without_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    import lowlatseg.propagation.svconv as svconv

    calls = []
    real = svconv._sv_conv_compiled
    monkeypatch.setattr(svconv, "_sv_conv_compiled", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    f, w = torch.randn(1, 3, 5, 5), torch.softmax(torch.randn(1, 9, 5, 5), 1)
    with torch.no_grad():
        sv_conv(f, w, kernel_size=3)  # auto: compiled
    assert calls == [1]
    sv_conv(f.clone().requires_grad_(), w, kernel_size=3)  # a gradient is needed: the loop
    sv_conv(f, w.clone().requires_grad_(), kernel_size=3)
    with torch.no_grad():
        sv_conv(f.double(), w.double(), kernel_size=3)  # float64: the loop
        sv_conv(f, w, kernel_size=3, impl="loop")
    assert calls == [1]
    with pytest.raises(ValueError, match="needs float32 CPU tensors and no gradient"):
        sv_conv(f.requires_grad_(), w, kernel_size=3, impl="compiled")


@pytest.mark.parametrize("path", PATHS)
def test_delta_kernel_returns_input_exactly(path: str) -> None:
    f = torch.randn(1, 3, 7, 9)
    assert torch.equal(run_sv_conv(path, f, delta_weights(9), kernel_size=9, dilation=2), f)


@pytest.mark.parametrize("path", PATHS)
def test_shifted_delta_shifts_interior(path: str) -> None:
    f = torch.randn(1, 2, 12, 12)
    out = run_sv_conv(path, f, delta_weights(5, dy=1, dx=-2), kernel_size=5, dilation=2)
    # out[y, x] = f[y + 2, x - 4]
    torch.testing.assert_close(out[:, :, :-2, 4:], f[:, :, 2:, :-4])


@pytest.mark.parametrize("path", PATHS)
def test_constant_field_is_preserved_by_any_normalised_kernel(path: str) -> None:
    f = torch.full((1, 3, 6, 8), 2.5)
    w = torch.softmax(torch.randn(1, 49, 6, 8), 1)
    torch.testing.assert_close(run_sv_conv(path, f, w, kernel_size=7, dilation=3), f)


def test_shape_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="needs 81"):
        sv_conv(torch.zeros(1, 2, 4, 4), torch.zeros(1, 9, 4, 4), kernel_size=9)
    with pytest.raises(ValueError, match="odd"):
        sv_conv(torch.zeros(1, 2, 4, 4), torch.zeros(1, 16, 4, 4), kernel_size=4)
    with pytest.raises(ValueError, match="dilation must be at least 1"):
        sv_conv(torch.zeros(1, 2, 4, 4), torch.zeros(1, 9, 4, 4), kernel_size=3, dilation=0)
    with pytest.raises(ValueError, match="impl must be one of"):
        sv_conv(torch.zeros(1, 2, 4, 4), torch.zeros(1, 9, 4, 4), kernel_size=3, impl="fast")


def test_zero_flow_is_identity_and_integer_flow_shifts() -> None:
    f = torch.randn(1, 3, 6, 10)
    assert torch.allclose(warp(f, torch.zeros(1, 2, 6, 10)), f, atol=1e-6)
    flow = torch.zeros(1, 2, 6, 10)
    flow[:, 0] = 2.0  # sample 2 columns to the right
    torch.testing.assert_close(warp(f, flow)[..., :-2], f[..., 2:])


def test_dis_flow_recovers_a_shift() -> None:
    rng = np.random.default_rng(0)
    import cv2

    base = cv2.GaussianBlur(rng.integers(0, 255, (120, 160), dtype=np.uint8), (0, 0), 2)
    key = base[10:106, 10:138]
    cur = base[10:106, 14:142]  # current = key moved left by 4 px: key(p + 4) = cur(p)
    flow = DISFlow("medium")(np.ascontiguousarray(cur), np.ascontiguousarray(key))
    assert np.median(flow[20:-20, 20:-20, 0]) == pytest.approx(4.0, abs=0.3)
    grid = flow_to_grid(flow, (12, 16))
    assert grid.shape == (1, 2, 12, 16)
    assert float(grid[0, 0, 3:-3, 3:-3].median()) == pytest.approx(0.5, abs=0.05)  # 4 px / stride 8


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    net = build(llnet_tiny()).eval()
    img = torch.rand(1, 3, 64, 80)
    with torch.no_grad():
        key = make_key(net, 0, img)
        cur = Current(index=1, image=img.clone(), f_low=net.low(img))
    return net, key, cur


def test_every_method_follows_the_protocol_and_keeps_shapes(setup) -> None:
    net, key, cur = setup
    for name, m in all_methods(PropagationConfig(), low_ch=net.config.low_ch).items():
        assert isinstance(m, Propagator) and m.name == name
        with torch.no_grad():
            out = m.propagate(key, cur)
            assert out.shape == key.f_high.shape
            for fuse in (True, False):
                assert propagated_logits(net, m, key, cur, fuse=fuse, out_size=(64, 80)).shape == (1, 11, 64, 80)


def test_same_frame_is_nearly_identity(setup) -> None:
    """Propagating a frame onto itself gives its own features back (clockwork, flow exactly-ish, image-difference)."""
    net, key, cur = setup
    with torch.no_grad():
        assert torch.equal(Clockwork().propagate(key, cur), key.f_high)
        torch.testing.assert_close(FlowWarp().propagate(key, cur), key.f_high, atol=1e-3, rtol=0)
        w = ImageDifference(PropagationConfig()).weights(key, cur)
        centre = PropagationConfig().kernel_size ** 2 // 2
        assert (w.argmax(1) == centre).float().mean() > 0.9


def test_kernel_weights_are_normalised(setup) -> None:
    net, key, cur = setup
    cfg = PropagationConfig()
    for m in (Uniform(cfg), ImageDifference(cfg), Adaptive(cfg, low_ch=net.config.low_ch)):
        with torch.no_grad():
            w = m.weights(key, cur)
        assert w.shape[1] == cfg.kernel_size**2
        torch.testing.assert_close(w.sum(1), torch.ones_like(w.sum(1)))
        assert (w >= 0).all()


def test_predictor_starts_as_identity() -> None:
    """Untrained, the predictor keeps content in place (a strong centre tap): training starts from clockwork."""
    torch.manual_seed(0)
    p = KernelPredictor(low_ch=8, kernel_size=5, dilation=1).eval()
    f = torch.randn(1, 8, 10, 12)
    with torch.no_grad():
        w = p(f, f)
    assert (w.argmax(1) == 12).all()


@pytest.mark.parametrize("kernel_size,centre_weight", [(5, 0.8), (7, 0.8), (7, 0.3), (3, 0.95)])
def test_predictor_starts_with_the_asked_centre_weight(kernel_size: int, centre_weight: float) -> None:
    """Untrained, every location's kernel holds ``centre_weight`` on its centre tap and spreads the
    rest evenly over the others, whatever the features."""
    torch.manual_seed(0)
    p = KernelPredictor(low_ch=8, kernel_size=kernel_size, dilation=1, centre_weight=centre_weight).eval()
    with torch.no_grad():
        w = p(torch.randn(2, 8, 6, 7), torch.randn(2, 8, 6, 7))
    kk = kernel_size**2
    torch.testing.assert_close(w[:, kk // 2], torch.full_like(w[:, 0], centre_weight))
    others = torch.cat([w[:, : kk // 2], w[:, kk // 2 + 1 :]], dim=1)
    torch.testing.assert_close(others, torch.full_like(others, (1 - centre_weight) / (kk - 1)))


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.2, 1.5])
def test_predictor_refuses_a_centre_weight_outside_0_1(bad: float) -> None:
    with pytest.raises(ValueError, match="centre_weight"):
        KernelPredictor(low_ch=8, kernel_size=5, dilation=1, centre_weight=bad)


def test_coarse_correlation_is_the_unfolded_dot_product() -> None:
    """Against an obviously-correct reference: unfold the replicate-padded key into its 3 x 3
    neighbourhoods and take the dot product with the current feature (both memory layouts)."""
    import torch.nn.functional as F

    from lowlatseg.propagation.predictor import coarse_correlation

    torch.manual_seed(0)
    a, b = torch.randn(2, 4, 9, 11), torch.randn(2, 4, 9, 11)
    d = 2
    cols = F.unfold(F.pad(b, (d,) * 4, mode="replicate"), 3, dilation=d).view(2, 4, 9, 9 * 11)
    ref = (cols * a.reshape(2, 4, 1, 9 * 11)).sum(1).view(2, 9, 9, 11)
    torch.testing.assert_close(coarse_correlation(a, b, dilation=d), ref)
    cl = torch.channels_last
    torch.testing.assert_close(coarse_correlation(a.contiguous(memory_format=cl), b.contiguous(memory_format=cl), dilation=d), ref)


def test_adaptive_caches_the_keyframe_embedding_without_changing_weights() -> None:
    """Outside autograd the keyframe's embedding is computed once per keyframe and reused; the
    weights are bit-identical to computing it every frame. Under autograd nothing is cached."""
    torch.manual_seed(0)
    m = Adaptive(PropagationConfig(), low_ch=8).eval()
    for p in m.parameters():  # a non-trivial predictor (the untrained one is nearly constant)
        torch.nn.init.normal_(p, std=0.3)
    key = KeyState(index=0, image=torch.rand(1, 3, 80, 96), f_low=torch.randn(1, 8, 10, 12), f_high=torch.randn(1, 16, 10, 12))
    curs = [Current(index=t, image=torch.rand(1, 3, 80, 96), f_low=torch.randn(1, 8, 10, 12)) for t in (1, 2)]
    calls = {"n": 0}
    m.predictor.embed.register_forward_hook(lambda *a: calls.__setitem__("n", calls["n"] + 1))
    with torch.no_grad():
        fresh = [m.predictor(key.f_low, c.f_low) for c in curs]  # embeds key and current: 2 calls each
        assert calls["n"] == 4
        cached = [m.weights(key, c) for c in curs]  # key once, then the current frame only
    assert calls["n"] == 4 + 3 and list(key.cache) == [m.predictor]
    for a, b in zip(fresh, cached):
        assert torch.equal(a, b)
    key.cache.clear()
    m.weights(key, curs[0]).sum().backward()
    assert not key.cache and m.predictor.embed.weight.grad is not None


def test_kernel_methods_load_the_compiled_loop_when_built() -> None:
    """Loading it inside the first propagated frame cost that frame ~0.5-1.5 s (a live stream's
    first answer late by that much); building the method loads it instead."""
    import subprocess
    import sys

    code = ("import sys; from lowlatseg.propagation.methods import PropagationConfig, Uniform; "
            "name = 'lowlatseg.propagation.svconv_kernel'; assert name not in sys.modules; "
            "Uniform(PropagationConfig()); assert name in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_full_correlation_kernels_point_where_the_key_matches() -> None:
    """With the full correlation and its direct term dominant, each location's kernel peaks at the
    tap where the keyframe's features equal the current ones, in sv_conv's convention: moving the
    key by that kernel reproduces the current features."""
    torch.manual_seed(0)
    p = KernelPredictor(low_ch=8, kernel_size=5, dilation=2, full_correlation=True).eval()
    with torch.no_grad():
        p.net[-1].bias.zero_()
        p.match_scale.fill_(200.0)
    big = torch.randn(1, 8, 20, 24)
    key = big[..., 2:18, 2:22]  # key(p) = big(p + 2)
    cur = big[..., 4:20, 0:20]  # cur(p) = big(p + (4, 0)) = key(p + (2, -2)): one tap down, one tap left
    with torch.no_grad():
        w = p(key, cur)
    inner = (slice(None), slice(4, -4), slice(4, -4))
    assert (w.argmax(1)[inner] == (2 + 1) * 5 + (2 - 1)).all()
    moved = sv_conv(key, w, kernel_size=5, dilation=2)
    torch.testing.assert_close(moved[..., 4:-4, 4:-4], cur[..., 4:-4, 4:-4], rtol=0, atol=1e-3)


def test_old_propagation_files_load_with_their_own_predictor(tmp_path: Path) -> None:
    """A file whose saved config predates centre_weight and full_correlation loads (strict state
    dicts) with the predictor it was trained with, and says how it started."""
    from lowlatseg.checkpoint import load_model
    from lowlatseg.propagation.weights import LEGACY_CONFIG, load_propagation, save_propagation

    base = load_model()
    cfg = PropagationConfig(dilation=2)
    path = tmp_path / "old.pt"
    save_propagation(path, cfg=cfg, base=base, adaptive=Adaptive(cfg, low_ch=base.config.low_ch), uniform=Uniform(cfg))
    obj = torch.load(path, weights_only=False)
    for k in ("centre_weight", "full_correlation"):
        del obj["prop_config"][k]
    torch.save(obj, path)
    loaded, adaptive, _ = load_propagation(path, base)
    assert loaded.centre_weight == LEGACY_CONFIG["centre_weight"] and not loaded.full_correlation
    assert adaptive.predictor.match_scale is None and loaded.dilation == 2


def test_without_a_centre_weight_the_predictor_starts_as_the_bundled_files_did() -> None:
    """centre_weight None: a centre logit of 3 (0.295 of a 7x7 kernel), the start of the recipe."""
    import math

    p = KernelPredictor(low_ch=8, kernel_size=7, dilation=2).eval()
    with torch.no_grad():
        w = p(torch.randn(1, 8, 5, 6), torch.randn(1, 8, 5, 6))
    torch.testing.assert_close(w[:, 24], torch.full_like(w[:, 24], math.exp(3) / (math.exp(3) + 48)))
