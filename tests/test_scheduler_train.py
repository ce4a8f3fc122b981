"""`train scheduler` end to end on tiny data, and the shipped scheduler against the shipped model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lowlatseg.checkpoint import load_model
from lowlatseg.cli import main
from lowlatseg.data.synthetic import MotionConfig
from lowlatseg.runtime.build import build_runtime
from lowlatseg.runtime.config import RuntimeConfig
from lowlatseg.scheduling.weights import load_scheduler
from lowlatseg.train.scheduler import UNCALIBRATED_BUDGET, UNCALIBRATED_THRESHOLD, SchedTrainConfig, train_scheduler

from conftest import VIDEO, needs_video


def _cfg(tiny_camvid: Path, tiny_weights: Path, tiny_prop: Path, videos: tuple[str, ...]) -> SchedTrainConfig:
    return SchedTrainConfig(base=str(tiny_weights), propagation=str(tiny_prop), data=str(tiny_camvid), videos=videos,
                            steps=2, batch_size=2, crop=(48, 64), max_gap=4, motion=MotionConfig(max_gap=4))


@needs_video
def test_train_scheduler_then_run_it(tiny_camvid: Path, tiny_weights: Path, tiny_prop: Path, tmp_path: Path) -> None:
    res = train_scheduler(_cfg(tiny_camvid, tiny_weights, tiny_prop, (str(VIDEO),)), tmp_path / "s", progress=False)
    assert res["step"] == 2 and np.isfinite(res["loss"])
    # calibrated on the video for the default rate (0.2), not the uncalibrated fallbacks
    assert 0 <= res["default_threshold"] <= 1 and res["default_budget"] >= 0
    assert (res["default_threshold"], res["default_budget"]) != (UNCALIBRATED_THRESHOLD, UNCALIBRATED_BUDGET)
    model = load_model(tiny_weights)
    _, defaults = load_scheduler(tmp_path / "s" / "scheduler.pt", model)
    assert defaults.rule == "accumulated" and defaults.value("accumulated") == pytest.approx(res["default_budget"])
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(6)]
    with build_runtime(model, RuntimeConfig(mode="adaptive", propagation=tiny_prop, scheduler=tmp_path / "s" / "scheduler.pt", size=(48, 64))) as rt:
        results = [rt.step(f) for f in frames]
    assert results[0].is_keyframe and all(r.deviation is not None for r in results[1:])


def test_train_scheduler_without_video_says_it_is_uncalibrated(tiny_camvid: Path, tiny_weights: Path, tiny_prop: Path,
                                                              tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = train_scheduler(_cfg(tiny_camvid, tiny_weights, tiny_prop, ()), tmp_path / "s", progress=False)
    assert (res["default_threshold"], res["default_budget"]) == (UNCALIBRATED_THRESHOLD, UNCALIBRATED_BUDGET)
    assert "uncalibrated" in capsys.readouterr().err


def test_train_scheduler_bad_target_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "scheduler", "--out", str(tmp_path / "s"), "--target-rate", "0"]) == 2
    assert "--target-rate 0.0 must be in (0, 1]" in capsys.readouterr().err


def test_shipped_scheduler_fits_the_shipped_model() -> None:
    model = load_model()
    predictor, defaults = load_scheduler(None, model)
    assert predictor.config.low_ch == model.config.low_ch
    assert defaults.rule in ("instant", "accumulated") and 0 <= defaults.value("instant") <= 1 and defaults.value("accumulated") >= 0


def test_train_scheduler_bad_out_and_bad_input_leave_nothing(tiny_camvid: Path, tiny_weights: Path, tiny_prop: Path,
                                                             tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    afile = tmp_path / "taken.txt"
    afile.write_text("x")
    assert main(["train", "scheduler", "--out", str(afile), "--base", str(tiny_weights), "--data", str(tiny_camvid),
                 "--video-dir", "none", "--steps", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "is an existing file" in err and "Traceback" not in err and afile.read_text() == "x"
    # a bad input fails before the run folder exists: no folder holding only a config.json
    out = tmp_path / "run"
    assert main(["train", "scheduler", "--out", str(out), "--base", str(tiny_weights), "--propagation", str(tiny_prop),
                 "--data", str(tiny_camvid), "--video", str(tmp_path / "missing.mp4"), "--steps", "1", "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err and not out.exists()


def test_deviation_predictor_reads_only_its_leading_channels() -> None:
    """``in_ch``: what lies behind the leading channels (llnet-e's raw frame) never changes the
    prediction; 0 (files saved before the field existed) reads them all."""
    from lowlatseg.scheduling.predictor import DeviationConfig, DeviationPredictor

    torch.manual_seed(0)
    lean = DeviationPredictor(DeviationConfig(low_ch=80, in_ch=16)).eval()
    full = DeviationPredictor(DeviationConfig(low_ch=80)).eval()
    assert lean.reduce[0].in_channels == 3 * 16 and full.reduce[0].in_channels == 3 * 80
    a, b = torch.rand(2, 80, 12, 16), torch.rand(2, 80, 12, 16)
    b2 = b.clone()
    b2[:, 16:] = torch.rand(2, 64, 12, 16)
    with torch.inference_mode():
        torch.testing.assert_close(lean(a, b), lean(a, b2), rtol=0, atol=0)
        assert not torch.allclose(full(a, b), full(a, b2))  # the full one does see them
    assert DeviationConfig(**{"low_ch": 80, "width": 32}).in_ch == 0


def test_train_scheduler_learns_the_deviation_of_the_method_it_is_given(tiny_camvid: Path, tiny_weights: Path,
                                                                        tiny_prop: Path, tmp_path: Path) -> None:
    """The default teacher is the runtime's flow, which reads no propagation file; another method
    reads it; an unknown one is refused by name."""
    from dataclasses import replace

    from lowlatseg.errors import ParameterError

    cfg = replace(_cfg(tiny_camvid, tiny_weights, tiny_prop, ()), propagation=str(tmp_path / "never_read.pt"))
    assert cfg.method == "flow"
    res = train_scheduler(cfg, tmp_path / "flow", progress=False)
    assert res["step"] == 2 and np.isfinite(res["loss"])
    saved = torch.load(tmp_path / "flow" / "scheduler.pt", weights_only=False)
    assert saved["train_config"]["method"] == "flow"
    with pytest.raises(Exception, match="never_read.pt"):
        train_scheduler(replace(cfg, method="adaptive"), tmp_path / "adaptive", progress=False)
    with pytest.raises(ParameterError, match="'optical' is not one of"):
        train_scheduler(replace(cfg, method="optical"), tmp_path / "bad", progress=False)
