"""The warp-error deviation predictor (scheduling/predictor.py): what it measures, by construction,
and its scheduler file from ``train scheduler --predictor warp-error`` through the runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lowlatseg.errors import UserError
from lowlatseg.scheduling.predictor import DeviationConfig, WarpErrorPredictor, build_predictor

H, W = 160, 224


def _texture(seed: int = 0) -> np.ndarray:
    """H x W x 3 float RGB in [0, 1]: smooth blobs with enough structure for DIS to track."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, 3, H // 8, W // 8)).astype(np.float32))
    return F.interpolate(coarse, size=(H, W), mode="bicubic", align_corners=False).clamp(0, 1)[0].permute(1, 2, 0).numpy()


def _f_low(rgb: np.ndarray) -> torch.Tensor:
    """1 x (64 + 192) x H/8 x W/8: 64 learned channels (zeros here) and the frame, as a *-frame network's low."""
    image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
    return torch.cat([torch.zeros(1, 64, H // 8, W // 8), F.pixel_unshuffle(image, 8)], 1)


def _predictor(level: int = 16) -> WarpErrorPredictor:
    p = build_predictor(DeviationConfig(kind="warp-error", low_ch=256, error_level=level))
    assert isinstance(p, WarpErrorPredictor)
    return p.eval()


def test_flow_explains_a_shift_but_not_new_content() -> None:
    """0 for the keyframe itself; a camera shift that the flow follows stays near 0; a patch of
    new content (a quarter of the frame replaced) shows up as about that share of the frame."""
    pred = _predictor()
    frame = _texture(0)
    same = float(pred(_f_low(frame), _f_low(frame))[0])
    shifted = np.roll(frame, (3, 5), axis=(0, 1))
    shift = float(pred(_f_low(frame), _f_low(shifted))[0])
    changed = frame.copy()
    changed[: H // 2, : W // 2] = 1.0 - _texture(7)[: H // 2, : W // 2]
    new = float(pred(_f_low(frame), _f_low(changed))[0])
    assert same == 0.0
    assert shift < 0.06  # the wrapped-around borders of np.roll are new content too
    assert 0.12 < new < 0.4 and new > 4 * shift


def test_batches_score_each_pair_and_the_level_is_a_tolerance() -> None:
    frame, other = _texture(0), _texture(3)
    keys = torch.cat([_f_low(frame), _f_low(frame)])
    curs = torch.cat([_f_low(frame), _f_low(other)])
    out = _predictor()(keys, curs)
    assert out.shape == (2,) and out[0] == 0 and 0 < out[1] <= 1
    with pytest.raises(ValueError, match="differ in shape"):
        _predictor()(keys[:1], curs)
    dimmer = np.clip(frame * 0.9, 0, 1)  # a light change of at most 26 grey levels
    assert float(_predictor(30)(_f_low(frame), _f_low(dimmer))[0]) == 0.0
    assert float(_predictor(0)(_f_low(frame), _f_low(dimmer))[0]) > 0.5


def test_networks_without_the_frame_in_f_low_are_refused(small_video: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from lowlatseg.checkpoint import DEFAULT_WEIGHTS
    from lowlatseg.cli import main

    with pytest.raises(UserError, match="learned scheduler"):
        WarpErrorPredictor(DeviationConfig(kind="warp-error", low_ch=64))
    with pytest.raises(UserError, match="kind 'guess'"):
        build_predictor(DeviationConfig(kind="guess"))
    llnet_m = DEFAULT_WEIGHTS.parent / "llnet_m_camvid.pt"  # 64 learned channels and no frame in f_low
    out = tmp_path / "w"
    assert main(["train", "scheduler", "--predictor", "warp-error", "--base", str(llnet_m), "--video", str(small_video),
                 "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "llnet-m does not carry the frame" in err and "--predictor" in err and not out.exists()


def test_learned_files_keep_the_old_config_and_unknown_settings_are_refused(tmp_path: Path) -> None:
    """A learned scheduler file stores the config keys older versions know; a file with a setting
    this version does not know gets one sentence, not a TypeError."""
    from lowlatseg.checkpoint import load_model
    from lowlatseg.scheduling.predictor import DeviationPredictor
    from lowlatseg.scheduling.weights import load_scheduler, save_scheduler

    base = load_model()
    path = tmp_path / "s.pt"
    save_scheduler(path, predictor=DeviationPredictor(DeviationConfig(low_ch=256, in_ch=64)), base=base, threshold=0.1)
    obj = torch.load(path, weights_only=True)
    assert set(obj["config"]) == {"low_ch", "width", "in_ch"}
    assert isinstance(load_scheduler(path, base)[0], DeviationPredictor)
    obj["config"]["from_the_future"] = 1
    torch.save(obj, path)
    with pytest.raises(UserError, match="newer lowlatseg"):
        load_scheduler(path, base)


def test_train_scheduler_warp_error_calibrates_a_file_the_runtime_uses(small_video: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """``train scheduler --predictor warp-error`` trains nothing, calibrates both numbers on the
    video and writes a scheduler file that loads as a WarpErrorPredictor and drives adaptive mode."""
    from lowlatseg.checkpoint import load_model
    from lowlatseg.cli import main
    from lowlatseg.runtime.build import build_runtime
    from lowlatseg.runtime.config import RuntimeConfig
    from lowlatseg.scheduling.weights import load_scheduler

    out = tmp_path / "warp"
    assert main(["train", "scheduler", "--predictor", "warp-error", "--video", str(small_video), "--out", str(out),
                 "--target-rate", "0.5", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert not (out / "log.jsonl").exists() and json.loads((out / "config.json").read_text())["predictor"] == "warp-error"
    model = load_model()
    pred, defaults = load_scheduler(out / "scheduler.pt", model)
    assert isinstance(pred, WarpErrorPredictor) and defaults.budget == result["default_budget"]
    frames = [(np.roll(_texture(1), 6 * t, axis=1) * 255).astype(np.uint8) for t in range(6)]
    rc = RuntimeConfig(mode="adaptive", size=None, scheduler=str(out / "scheduler.pt"), budget=100.0)
    with build_runtime(model, rc) as rt:
        steps = [rt.step(f) for f in frames]
    assert steps[0].is_keyframe and not any(s.is_keyframe for s in steps[1:])
    devs = [s.deviation for s in steps[1:]]
    assert all(d is not None and 0 <= d <= 1 for d in devs) and devs[-1] > 0  # measured on every frame


def test_train_scheduler_warp_error_needs_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lowlatseg.cli import main

    assert main(["train", "scheduler", "--predictor", "warp-error", "--video-dir", "none", "--out", str(tmp_path / "w"),
                 "--quiet"]) == 2
    assert "only calibrated, on video" in capsys.readouterr().err and not (tmp_path / "w").exists()
    assert main(["train", "scheduler", "--error-level", "20", "--video-dir", "none", "--out", str(tmp_path / "w"),
                 "--quiet"]) == 2
    assert "add --predictor warp-error" in capsys.readouterr().err and not (tmp_path / "w").exists()
