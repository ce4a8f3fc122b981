"""What a deviation predictor learns (scheduling/targets.py): invariants of the two targets, and
`train scheduler --target` end to end on tiny data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from lowlatseg.cli import main
from lowlatseg.data.synthetic import MotionConfig
from lowlatseg.errors import UserError
from lowlatseg.scheduling.targets import MIN_FREQUENCY, label_deviation, pair_weights
from lowlatseg.train.scheduler import SchedTrainConfig, train_scheduler

CAMVID_LIKE = np.array([0.175, 0.242, 0.010, 0.330, 0.047, 0.101, 0.012, 0.012, 0.061, 0.007, 0.003])


def _labels(seed: int, shape: tuple[int, ...] = (3, 12, 16), classes: int = 11) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, classes, shape)).long()


def test_pair_weights_are_symmetric_zero_on_the_diagonal_and_average_one_over_the_frequencies() -> None:
    w = pair_weights(CAMVID_LIKE)
    assert w.shape == (11, 11) and torch.equal(w, w.T) and torch.all(torch.diagonal(w) == 0)
    # w[a, b] = (w_a + w_b) / 2, so w_a = w[a, b] + w[a, c] - w[b, c] for any distinct b, c
    single = np.array([(w[a, (a + 1) % 11] + w[a, (a + 2) % 11] - w[(a + 1) % 11, (a + 2) % 11]).item() for a in range(11)])
    assert np.allclose(single, 1 / (11 * CAMVID_LIKE / CAMVID_LIKE.sum()), rtol=1e-4)
    assert np.isclose((CAMVID_LIKE / CAMVID_LIKE.sum() * single).sum(), 1, rtol=1e-4)
    # a rarer class weighs more: Bicyclist (0.3 %) against Road (33 %)
    assert w[10, 0] > w[3, 0]


def test_with_equal_frequencies_the_weighted_deviation_is_the_pixel_fraction() -> None:
    prop, ref = _labels(0), _labels(1)
    equal = pair_weights(np.full(11, 1 / 11))
    assert torch.allclose(label_deviation(prop, ref, equal), label_deviation(prop, ref))
    assert torch.allclose(label_deviation(prop, ref), (prop != ref).float().mean((1, 2)))


def test_agreeing_labels_deviate_by_nothing_and_the_weighted_deviation_stays_in_range() -> None:
    ref = _labels(2)
    w = pair_weights(CAMVID_LIKE)
    assert torch.all(label_deviation(ref, ref, w) == 0) and torch.all(label_deviation(ref, ref) == 0)
    every_pixel_bicyclist = torch.full_like(ref, 10)
    dev = label_deviation(every_pixel_bicyclist, torch.zeros_like(ref), w)
    assert torch.all(dev == 1.0)  # clipped: the predictors' range
    # one wrong pixel of a rare class costs more than one of a common class
    base = torch.zeros_like(ref[:1])
    common, rare = base.clone(), base.clone()
    common[0, 0, 0], rare[0, 0, 0] = 3, 10
    assert 0 < label_deviation(common, base, w) < label_deviation(rare, base, w) < 1
    assert label_deviation(common, base) == label_deviation(rare, base)


def test_bad_frequencies_are_refused_in_a_sentence() -> None:
    for bad in ([0.0] * 11, [0.5, -0.1, 0.6], [float("nan")] * 3, [1.0]):
        with pytest.raises(UserError, match="class frequencies"):
            pair_weights(bad)
    # a class rarer than MIN_FREQUENCY (or absent) weighs as if it had that share: finite, and the
    # weights still average 1 over the floored, renormalised shares
    for freq in ([1.0, 0.0, 0.0], [0.5, 0.4995, 0.0005]):
        w = pair_weights(freq).numpy()
        assert np.isfinite(w).all()
        single = np.array([w[0, 1] + w[0, 2] - w[1, 2], w[1, 0] + w[1, 2] - w[0, 2], w[2, 0] + w[2, 1] - w[0, 1]])
        floored = np.maximum(np.array(freq), MIN_FREQUENCY)
        floored /= floored.sum()
        assert np.isclose((floored * single).sum(), 1, rtol=1e-4) and np.isclose(single[2], 1 / (3 * floored[2]), rtol=1e-4)


def _cfg(tiny_camvid: Path, tiny_weights: Path, tiny_prop: Path) -> SchedTrainConfig:
    return SchedTrainConfig(base=str(tiny_weights), propagation=str(tiny_prop), data=str(tiny_camvid), steps=2, batch_size=2,
                            crop=(48, 64), max_gap=4, motion=MotionConfig(max_gap=4))


def test_a_class_weighted_scheduler_stores_its_target_and_the_frequencies_it_weighed(
        tiny_camvid: Path, tiny_weights: Path, tiny_prop: Path, tmp_path: Path) -> None:
    cfg = replace(_cfg(tiny_camvid, tiny_weights, tiny_prop), target="class-weighted")
    res = train_scheduler(cfg, tmp_path / "w", progress=False)
    assert res["step"] == 2 and np.isfinite(res["loss"])
    saved = torch.load(tmp_path / "w" / "scheduler.pt", weights_only=False)
    assert saved["deviation_target"] == "class-weighted" and saved["train_config"]["target"] == "class-weighted"
    freq = np.array(saved["class_frequencies"])
    assert freq.shape == (11,) and np.isclose(freq.sum(), 1, atol=1e-4) and (freq >= 0).all()
    from lowlatseg.checkpoint import load_model
    from lowlatseg.scheduling.weights import load_scheduler

    _, defaults = load_scheduler(tmp_path / "w" / "scheduler.pt", load_model(tiny_weights))
    assert defaults.target == "class-weighted" and torch.allclose(defaults.target_weights(), pair_weights(freq))
    plain = train_scheduler(_cfg(tiny_camvid, tiny_weights, tiny_prop), tmp_path / "p", progress=False)
    assert np.isfinite(plain["loss"]) and plain["loss"] != res["loss"]  # same seed, same pairs: only the target differs
    saved_plain = torch.load(tmp_path / "p" / "scheduler.pt", weights_only=False)
    assert saved_plain["deviation_target"] == "pixels" and "class_frequencies" not in saved_plain
    with pytest.raises(UserError, match="'share' is not one of"):
        train_scheduler(replace(cfg, target="share"), tmp_path / "bad", progress=False)


def test_target_with_a_warp_error_scheduler_is_refused(small_video: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "scheduler", "--predictor", "warp-error", "--target", "class-weighted",
                 "--video", str(small_video), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "--target" in err and "warp-error" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_a_class_weighted_file_makes_the_oracles_replay_its_target(tiny_weights: Path, tiny_prop: Path, tiny_sched: Path,
                                                                   tmp_path: Path) -> None:
    """A scheduler file's target reaches the pair tables' true deviation (what the oracle rows
    replay), and the Oracle policy online makes the keyframes the replay of the weighted table makes."""
    from lowlatseg.checkpoint import load_model
    from lowlatseg.data.transforms import to_tensor
    from lowlatseg.evaluation import schedules as sc
    from lowlatseg.propagation.weights import load_propagation
    from lowlatseg.runtime.stream import StreamRuntime
    from lowlatseg.scheduling.policies import Oracle
    from lowlatseg.scheduling.weights import load_scheduler

    model = load_model(tiny_weights)
    _, adaptive, _ = load_propagation(tiny_prop, model)
    pred, defaults = load_scheduler(tiny_sched, model)
    assert defaults.target == "pixels" and defaults.target_weights() is None  # files without a target: the paper's
    saved = torch.load(tiny_sched, weights_only=False)
    saved.update(deviation_target="class-weighted", class_frequencies=[float(f) for f in CAMVID_LIKE])
    torch.save(saved, tmp_path / "w.pt")
    saved["class_frequencies"] = [0.5, 0.5]
    torch.save(saved, tmp_path / "two.pt")
    with pytest.raises(UserError, match="weighs 2 classes but the network predicts 11"):
        load_scheduler(tmp_path / "two.pt", model)
    saved["class_frequencies"] = [float(f) for f in CAMVID_LIKE]
    torch.save(saved, tmp_path / "w.pt")
    _, weighted = load_scheduler(tmp_path / "w.pt", model)
    weights = weighted.target_weights()
    assert weighted.target == "class-weighted" and weights is not None and torch.allclose(weights, pair_weights(CAMVID_LIKE))

    rng = np.random.default_rng(3)
    scene = rng.integers(0, 255, (48, 112, 3), dtype=np.uint8)
    frames = [np.ascontiguousarray(np.roll(scene, 4 * i, axis=1)[:, :64]) for i in range(10)]
    images = [to_tensor(f).unsqueeze(0) for f in frames]
    labels = [rng.integers(0, 11, (48, 64)).astype(np.uint8) for _ in frames]
    plain = sc.pair_table(model, adaptive, pred, images, labels, num_classes=11, max_gap=4)
    equal = sc.pair_table(model, adaptive, pred, images, labels, num_classes=11, max_gap=4,
                          weights=pair_weights(np.full(11, 1 / 11)))
    table = sc.pair_table(model, adaptive, pred, images, labels, num_classes=11, max_gap=4, weights=weights)
    assert all(np.isclose(equal.true[p], plain.true[p], atol=1e-6) for p in plain.true)
    assert table.predicted == plain.predicted and any(table.true[p] != plain.true[p] for p in plain.true)
    from lowlatseg.evaluation.long_video import stream_pair_table

    streamed = stream_pair_table(model, adaptive, pred, images, num_classes=11, max_gap=4, labels=labels, weights=weights)
    assert streamed.true.keys() == table.true.keys() and all(np.isclose(streamed.true[p], table.true[p]) for p in table.true)
    budget = float(np.median(list(table.true.values()))) * 2.5
    expected = sc.rule_schedule(table, table.true, budget, rule="accumulated")
    with StreamRuntime(model, method=adaptive, size=(48, 64),
                       policy=Oracle(model, adaptive, budget, rule="accumulated", max_interval=5, weights=weights)) as rt:
        assert [rt.step(f).keyframe_index for f in frames] == expected
    assert len(set(expected)) > 2  # keyframes besides the first: the comparison can fail
    assert expected != sc.rule_schedule(plain, plain.true, budget, rule="accumulated")  # and the weights decided it
