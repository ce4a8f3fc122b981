"""The flow-residual propagation method: its contracts, its file, and training it into a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lowlatseg.checkpoint import load_model
from lowlatseg.cli import main
from lowlatseg.errors import UserError
from lowlatseg.nn.builders import build, variant_config
from lowlatseg.propagation.flow_residual import FlowResidual
from lowlatseg.propagation.methods import Current, FlowWarp, KeyState, PropagationConfig
from lowlatseg.propagation.weights import load_flow_guided, load_flow_residual, load_propagation, save_propagation
from lowlatseg.train.propagation import distillation_loss


def _moving_pair(low_ch: int, h: int = 48, w: int = 64, shift: int = 8) -> tuple[KeyState, Current]:
    """A textured frame and the same frame shifted right by ``shift`` pixels, random features."""
    torch.manual_seed(0)
    base = F.interpolate(torch.rand(1, 3, h // 4, w // 4 + 4), size=(h, w + 16), mode="bilinear", align_corners=False)
    key_img, cur_img = base[..., 8 : 8 + w], base[..., 8 - shift : 8 - shift + w]
    gh, gw = h // 8, w // 8
    key = KeyState(0, key_img, torch.randn(1, low_ch, gh, gw), torch.randn(1, 16, gh, gw))
    return key, Current(1, cur_img, torch.randn(1, low_ch, gh, gw))


def _assert_same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _randomise(method: FlowResidual) -> None:
    torch.manual_seed(1)
    with torch.no_grad():
        method.out.weight.normal_(0, 0.1)


def test_untrained_method_is_the_flow_warp() -> None:
    """Its correction starts at zero: before training it moves features exactly as flow does."""
    method = FlowResidual(PropagationConfig(), low_ch=8, learned_ch=8, high_ch=16).eval()
    key, cur = _moving_pair(8)
    with torch.no_grad():
        torch.testing.assert_close(method.propagate(key, cur), FlowWarp().propagate(key, cur))


def test_correction_reads_the_current_frame_and_keeps_the_shape() -> None:
    method = FlowResidual(PropagationConfig(), low_ch=8, learned_ch=8, high_ch=16).eval()
    _randomise(method)
    key, cur = _moving_pair(8)
    with torch.no_grad():
        a = method.propagate(key, cur)
        other = Current(1, cur.image, cur.f_low + 1.0)
        b = method.propagate(key, other)
    assert a.shape == key.f_high.shape
    assert (a - b).abs().max() > 1e-3  # another current frame, another correction
    assert (a - FlowWarp().propagate(key, cur)).abs().max() > 1e-3


def test_without_fusion_only_the_high_level_channels_are_corrected() -> None:
    """``warp`` of [f_high, f_low] (the no-fusion path) corrects f_high and flow-warps f_low."""
    method = FlowResidual(PropagationConfig(), low_ch=8, learned_ch=8, high_ch=16).eval()
    _randomise(method)
    key, cur = _moving_pair(8)
    with torch.no_grad():
        both = method.warp(key, cur, torch.cat([key.f_high, key.f_low], dim=1))
        torch.testing.assert_close(both[:, :16], method.propagate(key, cur))
        torch.testing.assert_close(both[:, 16:], FlowWarp().warp(key, cur, key.f_low))


def test_frame_carrying_low_features_add_the_colour_change() -> None:
    """llnet-e's f_low ends with the frame (192 channels): the network sees 6 colour statistics of
    the current frame against the warped keyframe, zero where they match."""
    net = build(variant_config("llnet-e")).eval()
    method = FlowResidual(PropagationConfig(), low_ch=net.config.low_ch, learned_ch=net.learned_low_ch,
                          high_ch=net.config.high_ch)
    assert method.colour and method.net[0][0].in_channels == net.config.high_ch + 2 * net.learned_low_ch + 6
    frame = torch.rand(1, 3, 32, 48) * 0.8
    redder = frame.clone()
    redder[:, 0, :8, :8] += 0.16  # one cell (the top-left of the 4 x 6 grid) gets redder by 0.16
    zeros = torch.zeros(1, net.config.high_ch, 4, 6)
    with torch.no_grad():
        f_low = net.low(frame)
        stats = method.correction_inputs(zeros, f_low, f_low)[:, -6:]
        assert stats.abs().max() == 0  # the same frame: no colour change
        stats = method.correction_inputs(zeros, f_low, net.low(redder))[:, -6:]  # current: redder; key: as before
    expected = torch.zeros_like(stats)
    expected[0, 0, 0, 0] = expected[0, 3, 0, 0] = 0.16  # mean red change and mean |red change|, that cell only
    torch.testing.assert_close(stats, expected)


def test_bad_channel_split_is_refused() -> None:
    with pytest.raises(ValueError, match="learned_ch"):
        FlowResidual(PropagationConfig(), low_ch=8, learned_ch=9, high_ch=16)
    with pytest.raises(ValueError, match="192"):
        FlowResidual(PropagationConfig(), low_ch=20, learned_ch=8, high_ch=16)


def test_kl_loss_is_zero_on_the_teachers_own_logits_and_positive_otherwise() -> None:
    torch.manual_seed(0)
    t = torch.randn(2, 5, 4, 6)
    y = t.argmax(1)
    assert distillation_loss(t, t, y, "kl").abs() < 1e-6
    assert distillation_loss(t + torch.randn_like(t), t, y, "kl") > 1e-3
    # a confident teacher: hard labels reward pushing past its confidence (ever lower CE), the
    # KL divergence is least at the teacher's own distribution
    teacher, label = torch.tensor([2.0, 0.0]).view(1, 2, 1, 1), torch.zeros(1, 1, 1, dtype=torch.long)
    ce = [distillation_loss(teacher * s, teacher, label, "ce").item() for s in (0.5, 1.0, 2.0)]
    kl = [distillation_loss(teacher * s, teacher, label, "kl").item() for s in (0.5, 1.0, 2.0)]
    assert ce[0] > ce[1] > ce[2]
    assert kl[1] < kl[0] and kl[1] < kl[2]


def test_file_round_trip_and_older_files(tiny_weights: Path, tiny_prop: Path, tmp_path: Path) -> None:
    base = load_model(tiny_weights)
    assert load_flow_residual(tiny_prop, base) is None  # a file without the method
    cfg, adaptive, uniform = load_propagation(tiny_prop, base)
    method = FlowResidual(cfg, low_ch=base.config.low_ch, learned_ch=base.learned_low_ch, high_ch=base.config.high_ch)
    _randomise(method)
    path = tmp_path / "p.pt"
    save_propagation(path, cfg=cfg, base=base, adaptive=adaptive, uniform=uniform, flow_residual=method.eval())
    back = load_flow_residual(path, base)
    assert back is not None
    _assert_same(method, back)


def test_training_one_method_keeps_the_others_bit_for_bit(tiny_weights: Path, tiny_prop: Path, tiny_camvid: Path,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "added"
    rc = main(["train", "propagation", "--base", str(tiny_weights), "--data", str(tiny_camvid), "--video-dir", "none",
               "--steps", "2", "--batch-size", "1", "--start", str(tiny_prop), "--only", "flow-residual",
               "--loss", "kl", "--out", str(out), "--quiet", "--threads", "1"])
    assert rc == 0
    base = load_model(tiny_weights)
    (c0, a0, u0), (c1, a1, u1) = load_propagation(tiny_prop, base), load_propagation(out / "propagation.pt", base)
    assert c1 == c0  # the start file's config, kept
    _assert_same(a0, a1)
    _assert_same(u0, u1)
    assert load_flow_guided(out / "propagation.pt", base) is None  # not in the file, not asked for: still absent
    residual = load_flow_residual(out / "propagation.pt", base)
    assert residual is not None and residual.out.weight.abs().sum() > 0  # trained away from zero
    log = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    assert set(k for k in log if k.endswith(("_ce", "_kl"))) == {"flow_residual_kl"}  # the trained method, its loss


def test_only_without_a_start_file_is_refused(tiny_weights: Path, tiny_camvid: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["train", "propagation", "--base", str(tiny_weights), "--data", str(tiny_camvid), "--video-dir", "none",
               "--steps", "1", "--only", "flow-residual", "--out", str(tmp_path / "x"), "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--only" in err and "--start" in err and "Traceback" not in err
    rc = main(["train", "propagation", "--base", str(tiny_weights), "--data", str(tiny_camvid), "--video-dir", "none",
               "--steps", "1", "--only", "flow-residual", "--no-flow-residual", "--start", "x.pt", "--out",
               str(tmp_path / "y"), "--quiet"])
    assert rc == 2 and "switched off" in capsys.readouterr().err


def test_runtime_refuses_a_file_without_the_method(tiny_weights: Path, tiny_prop: Path) -> None:
    from lowlatseg.errors import UserError
    from lowlatseg.runtime.build import build_runtime
    from lowlatseg.runtime.config import RuntimeConfig

    with pytest.raises(UserError, match="no flow-residual method"):
        build_runtime(load_model(tiny_weights), RuntimeConfig(mode="fixed", propagation=tiny_prop,
                                                              propagation_method="flow-residual"))


def test_retraining_a_kernel_method_resets_its_sharpness_and_switched_off_methods_are_kept(
        tiny_weights: Path, tiny_prop: Path, tiny_camvid: Path, tmp_path: Path) -> None:
    """From a calibrated file: the kernels trained again start at sharpness 1 (calibrate them
    afterwards); the other method's sharpness and a method switched off stay as they were."""
    from dataclasses import replace

    from lowlatseg.propagation.flow_guided import FlowGuided
    from lowlatseg.train.propagation import PropTrainConfig, train_propagation

    base = load_model(tiny_weights)
    cfg, adaptive, uniform = load_propagation(tiny_prop, base)
    cfg = replace(cfg, sharpness=1.5, guided_sharpness=3.0)
    guided = FlowGuided(cfg, low_ch=base.config.low_ch).eval()
    start = tmp_path / "calibrated.pt"
    save_propagation(start, cfg=cfg, base=base, adaptive=adaptive, uniform=uniform, flow_guided=guided)
    run = PropTrainConfig(base=str(tiny_weights), data=str(tiny_camvid), steps=1, batch_size=1, crop=(48, 64),
                          video_fraction=0.0, start=str(start), flow_guided=False, flow_residual=False)
    train_propagation(run, tmp_path / "run", progress=False)
    out = tmp_path / "run" / "propagation.pt"
    new_cfg, new_adaptive, _ = load_propagation(out, base)
    assert new_cfg.sharpness == 1.0 and new_cfg.guided_sharpness == 3.0
    kept = load_flow_guided(out, base)
    assert kept is not None
    _assert_same(guided, kept)
    assert load_flow_residual(out, base) is None
    assert any(not torch.equal(x, y) for x, y in zip(adaptive.state_dict().values(), new_adaptive.state_dict().values()))
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["prop"]["guided_sharpness"] == 3.0  # the config trained is the one recorded


def test_start_file_errors_name_the_flags(tiny_weights: Path, tiny_camvid: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["train", "propagation", "--base", str(tiny_weights), "--data", str(tiny_camvid), "--video-dir", "none",
               "--steps", "1", "--start", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x"), "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--start" in err and "missing.pt" in err and "Traceback" not in err


def test_a_file_from_a_newer_version_is_refused_by_name(tiny_weights: Path, tiny_prop: Path, tiny_camvid: Path,
                                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A config key this version does not know (as ``residual_hidden`` was to the version before
    it) gets one sentence naming the key, from the library and from the command line (status 2)."""
    obj = torch.load(tiny_prop, weights_only=True)
    obj["prop_config"]["future_knob"] = 3
    newer = tmp_path / "newer_prop.pt"
    torch.save(obj, newer)
    base = load_model(tiny_weights)
    with pytest.raises(UserError, match=r"does not know \(future_knob\).*newer version"):
        load_propagation(newer, base)
    assert load_propagation(tiny_prop, base)[0] == PropagationConfig(**torch.load(tiny_prop, weights_only=True)["prop_config"])
    capsys.readouterr()
    code = main(["eval", "video", "--weights", str(tiny_weights), "--propagation", str(newer), "--data", str(tiny_camvid)])
    err = capsys.readouterr().err
    assert code == 2 and "future_knob" in err and "Traceback" not in err
