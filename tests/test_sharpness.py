"""The kernels' sharpness: what it does to a kernel, that files carry it to both predictors, and
that ``train sharpness`` writes the value its own table says is best."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from lowlatseg.checkpoint import load_model
from lowlatseg.cli import main
from lowlatseg.errors import ParameterError, UserError
from lowlatseg.evaluation.commands.video import AgreementOptions, eval_agreement
from lowlatseg.propagation.flow_guided import FlowGuided
from lowlatseg.propagation.methods import Adaptive, PropagationConfig, Uniform
from lowlatseg.propagation.predictor import KernelPredictor
from lowlatseg.propagation.weights import load_flow_guided, load_propagation, save_propagation
from lowlatseg.evaluation.commands.sharpness import SharpnessConfig, calibrate_sharpness, choose


def _varied(predictor: KernelPredictor, seed: int) -> KernelPredictor:
    """Random output weights, so the kernels differ over locations (a fresh predictor's are constant)."""
    g = torch.Generator().manual_seed(seed)
    out = predictor.net[-1]
    with torch.no_grad():
        out.weight.copy_(torch.randn(out.weight.shape, generator=g) * 0.5)
    return predictor.eval()


def test_sharpness_raises_each_kernel_to_that_power() -> None:
    torch.manual_seed(0)
    p = _varied(KernelPredictor(low_ch=8, kernel_size=5, dilation=1), 1)
    fk, fc = torch.rand(2, 8, 6, 7), torch.rand(2, 8, 6, 7)
    with torch.no_grad():
        w1 = p(fk, fc)
        p.sharpness = 2.5
        w = p(fk, fc)
    ref = w1**2.5 / (w1**2.5).sum(1, keepdim=True)
    torch.testing.assert_close(w, ref, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(w.sum(1), torch.ones(2, 6, 7))
    # sharper: more weight on each location's largest tap
    assert (w.max(1).values >= w1.max(1).values - 1e-6).all() and (w.max(1).values > w1.max(1).values + 1e-3).any()
    with pytest.raises(ValueError, match="sharpness"):
        KernelPredictor(low_ch=8, sharpness=0.0)


def _file(tiny_weights: Path, path: Path, cfg: PropagationConfig, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    base = load_model(tiny_weights)
    adaptive = Adaptive(cfg, low_ch=base.config.low_ch)
    guided = FlowGuided(cfg, low_ch=base.config.low_ch)
    _varied(adaptive.predictor, seed + 1)
    _varied(guided.predictor, seed + 2)
    save_propagation(path, cfg=cfg, base=base, adaptive=adaptive.eval(), uniform=Uniform(cfg), flow_guided=guided.eval())
    return path


def test_files_carry_each_predictors_sharpness_and_old_files_load_as_trained(tiny_weights: Path, tmp_path: Path) -> None:
    base = load_model(tiny_weights)
    cfg = PropagationConfig(kernel_size=5, dilation=1, sharpness=2.0, guided_sharpness=1.5)
    p = _file(tiny_weights, tmp_path / "p.pt", cfg)
    loaded, adaptive, _ = load_propagation(p, base)
    guided = load_flow_guided(p, base)
    assert loaded.sharpness == 2.0 and adaptive.predictor.sharpness == 2.0
    assert guided is not None and guided.predictor.sharpness == 1.5
    obj = torch.load(p, weights_only=True)
    del obj["prop_config"]["sharpness"], obj["prop_config"]["guided_sharpness"]  # a file from before the field
    torch.save(obj, tmp_path / "old.pt")
    _, old, _ = load_propagation(tmp_path / "old.pt", base)
    assert old.predictor.sharpness == 1.0


def test_choose_takes_the_best_mean_and_the_smaller_value_on_ties() -> None:
    clips = [{"adaptive": {"1": 60.0, "2": 62.0, "3": 62.0}}, {"adaptive": {"1": 70.0, "2": 71.0, "3": 71.0}}]
    best, means = choose(clips, "adaptive", (1.0, 2.0, 3.0))
    assert best == 2.0 and means == {"1": 65.0, "2": 66.5, "3": 66.5}


def test_calibration_writes_the_value_its_table_says_is_best(tiny_weights: Path, small_video: Path, tmp_path: Path) -> None:
    src = _file(tiny_weights, tmp_path / "p.pt", PropagationConfig(kernel_size=5, dilation=1, sharpness=3.0))
    out = tmp_path / "cal"
    assert main(["train", "sharpness", "--base", str(tiny_weights), "--propagation", str(src), "--video", str(small_video),
                 "--grid", "1", "4", "--interval", "3", "--frames", "12", "--size", "native", "--out", str(out),
                 "--threads", "1", "--quiet"]) == 0
    table = json.loads((out / "sharpness.json").read_text())
    clip = table["clips"][0]
    chosen = table["chosen"]
    for name in ("adaptive", "flow-guided"):  # scored from the file's weights, not its stored sharpness of 3
        scores = clip[name]
        assert chosen[name] == max((1.0, 4.0), key=lambda s: (scores[f"{s:g}"], -s))
    base = load_model(tiny_weights)
    loaded, adaptive, _ = load_propagation(out / "propagation.pt", base)
    assert loaded.sharpness == chosen["adaptive"] and loaded.guided_sharpness == chosen["flow-guided"]
    assert asdict(replace(loaded, sharpness=3.0, guided_sharpness=1.0)) == torch.load(src, weights_only=True)["prop_config"]
    assert json.loads(torch.load(out / "propagation.pt", weights_only=True)["sharpness_calibration"]) == table
    _, before, _ = load_propagation(src, base)
    for k, v in before.state_dict().items():  # the weights are untouched
        torch.testing.assert_close(adaptive.state_dict()[k], v, rtol=0, atol=0)
    # the calibrated file scores what the table said for the chosen values (the same protocol)
    rows = eval_agreement(AgreementOptions(video=str(small_video), interval=3, size="native", weights=str(tiny_weights),
                                           propagation=str(out / "propagation.pt"), max_frames=12, progress=False)).rows
    got = {r["method"]: r["miou"] for r in rows}
    assert got["adaptive"] == clip["adaptive"][f"{chosen['adaptive']:g}"]
    assert got["flow-guided"] == clip["flow-guided"][f"{chosen['flow-guided']:g}"]
    assert got["flow+fuse"] == clip["flow+fuse"]


def test_calibration_refuses_bad_input(tiny_weights: Path, small_video: Path, tiny_prop: Path, tmp_path: Path, capsys) -> None:
    base = dict(base=str(tiny_weights), propagation=str(tiny_prop), size="native")
    with pytest.raises(ParameterError, match="nope.mp4 does not exist"):
        calibrate_sharpness(SharpnessConfig(videos=(str(small_video), str(tmp_path / "nope.mp4")), **base), progress=False)
    with pytest.raises(UserError, match="fewer than two keyframe intervals"):
        calibrate_sharpness(SharpnessConfig(videos=(str(small_video),), interval=8, frames=16, **base), progress=False)
    with pytest.raises(ParameterError, match="missing"):
        calibrate_sharpness(SharpnessConfig(videos=(), **base), progress=False)
    with pytest.raises(SystemExit) as e:
        main(["train", "sharpness", "--out", str(tmp_path / "o"), "--video", str(small_video), "--grid", "0"])
    assert e.value.code == 2 and "--grid" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "sharpness", "--out", str(tmp_path / "o"), "--video", str(small_video), "--grid", "inf"])
    with pytest.raises(ParameterError, match="repeats a value"):
        calibrate_sharpness(SharpnessConfig(videos=(str(small_video),), grid=(1.0, 1.0), **base), progress=False)
    (tmp_path / "f").write_text("")
    common = ["--base", str(tiny_weights), "--propagation", str(tiny_prop), "--size", "native", "--quiet"]
    assert main(["train", "sharpness", "--out", str(tmp_path / "f"), "--video", str(small_video)] + common) == 2
    assert "is an existing file" in capsys.readouterr().err
    assert main(["train", "sharpness", "--out", str(tmp_path / "o")] + common) == 2
    assert "--video" in capsys.readouterr().err  # no default clips: the held-out ones must not be chosen on by accident
    (tmp_path / "run").mkdir()
    own = tmp_path / "run" / "propagation.pt"
    own.write_bytes(tiny_prop.read_bytes())
    assert main(["train", "sharpness", "--out", str(tmp_path / "run"), "--video", str(small_video), "--base", str(tiny_weights),
                 "--propagation", str(own), "--quiet"]) == 2
    assert "holds the --propagation file itself" in capsys.readouterr().err
    # a failure while scoring leaves no folder behind
    assert main(["train", "sharpness", "--out", str(tmp_path / "o"), "--video", str(small_video), "--interval", "8",
                 "--frames", "16"] + common) == 2
    assert "fewer than two keyframe intervals" in capsys.readouterr().err and not (tmp_path / "o").exists()
    assert main(["train", "sharpness", "--out", str(tmp_path / "f" / "sub"), "--video", str(small_video), "--interval", "3",
                 "--frames", "12", "--grid", "1"] + common) == 2
    assert "cannot create the folder" in capsys.readouterr().err
