"""The propagation benchmark protocol, its bad input, and propagation training end to end on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lowlatseg.cli import main
from lowlatseg.data.camvid import Sample
from lowlatseg.errors import UserError
from lowlatseg.evaluation.video import check_time_order, run_protocol, standard_rows
from lowlatseg.nn.builders import build, llnet_tiny
from lowlatseg.propagation.methods import Adaptive, PropagationConfig, Uniform
from lowlatseg.propagation.weights import load_propagation, save_propagation
from lowlatseg.train.propagation import PropTrainConfig, train_propagation

from conftest import VIDEO, needs_video

REQUIRED = ["per-frame", "clockwork", "flow", "uniform", "image-difference", "adaptive-nofuse", "adaptive"]


def _samples(names: list[str]) -> list[Sample]:
    return [Sample(name=n, image=Path(f"{n}.png"), label=None) for n in names]


def test_time_order_accepts_one_increasing_clip() -> None:
    check_time_order(_samples(["0016E5_07959", "0016E5_07961", "0016E5_07963"]))


@pytest.mark.parametrize("names, match", [
    (["A_0003", "A_0001"], "not in time order"),
    (["A_0001", "B_0002"], "mixes sequences"),
    (["frame"], "not named SEQUENCE_NUMBER"),
])
def test_time_order_errors(names: list[str], match: str) -> None:
    with pytest.raises(UserError, match=match):
        check_time_order(_samples(names))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    net = build(llnet_tiny()).eval()
    cfg = PropagationConfig(kernel_size=5, dilation=1)
    return net, cfg, Adaptive(cfg, low_ch=net.config.low_ch).eval(), Uniform(cfg)


def _clip(n: int) -> list[tuple[torch.Tensor, np.ndarray]]:
    rng = np.random.default_rng(0)
    base = torch.rand(1, 3, 48, 64)
    return [(torch.roll(base, shifts=i, dims=-1), rng.integers(0, 11, (48, 64)).astype(np.uint8)) for i in range(n)]


def test_protocol_rows_and_distances(tiny) -> None:
    net, cfg, adaptive, uniform = tiny
    res = run_protocol(net, standard_rows(cfg, adaptive, uniform), _clip(7), interval=3, num_classes=11)
    names = [r["method"] for r in res.rows]
    assert names[: len(REQUIRED)] == REQUIRED
    assert res.frames == 7 and res.interval == 3
    rows = {r["method"]: r for r in res.rows}
    for r in res.rows:
        assert len(r["miou_by_distance"]) == 3
        # d = 0 is the keyframe itself: every method gives the per-frame result there
        assert r["miou_by_distance"][0] == rows["per-frame"]["miou_by_distance"][0]
        assert r["ms_per_frame"] > 0


def test_interval_one_makes_every_method_per_frame(tiny) -> None:
    net, cfg, adaptive, uniform = tiny
    res = run_protocol(net, standard_rows(cfg, adaptive, uniform), _clip(4), interval=1, num_classes=11)
    assert len({r["miou"] for r in res.rows}) == 1


def test_agreement_of_per_frame_with_itself_is_100(tiny) -> None:
    net, cfg, adaptive, uniform = tiny
    frames = [(img, None) for img, _ in _clip(4)]
    res = run_protocol(net, standard_rows(cfg, adaptive, uniform), frames, interval=2, num_classes=11)
    assert res.rows[0]["miou"] == pytest.approx(100.0)


def test_interval_below_one_is_refused(tiny) -> None:
    net, cfg, adaptive, uniform = tiny
    with pytest.raises(UserError, match="at least 1"):
        run_protocol(net, standard_rows(cfg, adaptive, uniform), _clip(2), interval=0, num_classes=11)


def test_propagation_weights_for_another_base_are_refused(tiny, tmp_path: Path) -> None:
    net, cfg, adaptive, uniform = tiny
    save_propagation(tmp_path / "p.pt", cfg=cfg, base=net, adaptive=adaptive, uniform=uniform)
    load_propagation(tmp_path / "p.pt", net)  # the matching base loads
    torch.manual_seed(1)
    other = build(llnet_tiny()).eval()
    with pytest.raises(UserError, match="was trained for base weights"):
        load_propagation(tmp_path / "p.pt", other)


def test_cli_video_eval_bad_interval_and_order(tiny_camvid: Path, tiny_weights: Path, tmp_path: Path, capsys) -> None:
    rc = main(["eval", "video", "--data", str(tiny_camvid), "--split", "train", "--interval", "0", "--quiet"])
    assert rc == 2 and "--interval 0" in capsys.readouterr().err
    lines = (tiny_camvid / "train.txt").read_text().split("\n")
    (tiny_camvid / "shuffled.txt").write_text("\n".join([lines[1], lines[0]]))
    rc = main(["eval", "video", "--data", str(tiny_camvid), "--split", "shuffled", "--weights", str(tiny_weights), "--quiet"])
    assert rc == 2 and "not in time order" in capsys.readouterr().err


def test_train_propagation_flags_reach_the_saved_config(tiny_camvid: Path, tiny_weights: Path, tmp_path: Path) -> None:
    """The loss and predictor flags are recorded in the run's config and its weight file; a file
    with the full correlation and the flow-kernel target trained loads back, and its inference
    copy (BatchNorm folded) gives the same kernels."""
    import torch

    from lowlatseg.checkpoint import load_model
    from lowlatseg.nn.inference import for_inference
    from lowlatseg.propagation.weights import load_propagation

    out = tmp_path / "p"
    rc = main(["train", "propagation", "--base", str(tiny_weights), "--data", str(tiny_camvid), "--video-dir", "none",
               "--steps", "1", "--batch-size", "1", "--centre-weight", "0.6", "--feature-weight", "0", "--kernel-weight", "0.5",
               "--full-correlation", "--dilation", "2", "--no-flow-guided", "--out", str(out), "--quiet", "--threads", "1"])
    assert rc == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["feature_weight"] == 0 and cfg["kernel_weight"] == 0.5
    assert cfg["prop"]["centre_weight"] == 0.6 and cfg["prop"]["full_correlation"] and cfg["prop"]["dilation"] == 2
    assert np.isfinite(json.loads((out / "log.jsonl").read_text().splitlines()[-1])["adaptive_kernel"])
    base = load_model(str(tiny_weights))
    prop_cfg, adaptive, _ = load_propagation(out / "propagation.pt", base)
    assert prop_cfg.full_correlation and prop_cfg.dilation == 2 and adaptive.predictor.match_scale is not None
    torch.manual_seed(0)
    a, b = torch.randn(1, base.config.low_ch, 6, 8), torch.randn(1, base.config.low_ch, 6, 8)
    with torch.no_grad():
        torch.testing.assert_close(for_inference(adaptive).predictor(a, b), adaptive.predictor(a, b), rtol=1e-4, atol=1e-5)


@needs_video
def test_train_propagation_end_to_end_then_eval(tiny_camvid: Path, tiny_weights: Path, tiny_sched: Path, tmp_path: Path) -> None:
    cfg = PropTrainConfig(base=str(tiny_weights), data=str(tiny_camvid), videos=(str(VIDEO),), steps=2, batch_size=2,
                          crop=(48, 64), prop=PropagationConfig(kernel_size=5, dilation=1))
    out = tmp_path / "prop"
    last = train_propagation(cfg, out, progress=False)
    assert last["step"] == 2 and np.isfinite(last["adaptive_ce"])
    assert (out / "propagation.pt").is_file()
    js = tmp_path / "v.json"
    rc = main(["eval", "video", "--data", str(tiny_camvid), "--split", "train", "--interval", "2", "--weights",
               str(tiny_weights), "--propagation", str(out / "propagation.pt"), "--scheduler", str(tiny_sched),
               "--json", str(js), "--quiet", "--threads", "1"])
    assert rc == 0
    res = json.loads(js.read_text())
    names = [r["method"] for r in res["rows"]]
    assert names[: len(REQUIRED)] == REQUIRED
    assert {"flow-guided", "flow-guided-nofuse", "flow-residual"} <= set(names)  # trained beside adaptive, saved in the same file
    # the shipped rule (this scheduler file: instant), the other rule, then low-latency with the shipped rule
    assert names[-3:] == ["adaptive-scheduled", "adaptive-scheduled-accumulated", "low-latency"]
    assert [r["rule"] for r in res["rows"][-3:]] == ["instant", "accumulated", "instant"]
    # the scheduled rows run at the fixed protocol's keyframe rate (2 of 4 frames), as near as the threshold allows
    assert all(0 < r["keyframe_fraction"] <= 1 for r in res["rows"][-3:])
    assert res["frames"] == 4 and res["interval"] == 2
    for r in res["rows"]:
        assert {"method", "miou", "miou_by_distance", "ms_per_frame"} <= set(r)
    rc = main(["eval", "agreement", "--video", str(VIDEO), "--max-frames", "4", "--interval", "2", "--size", "48x64",
               "--weights", str(tiny_weights), "--propagation", str(out / "propagation.pt"), "--json", str(js), "--quiet", "--threads", "1"])
    assert rc == 0
    assert json.loads(js.read_text())["rows"][0]["miou"] == pytest.approx(100.0)
