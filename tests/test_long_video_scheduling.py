"""eval scheduling --video: the streamed pair table, the paired block bootstrap, per-video and
pooled scoring, the JSON layout and the one-sentence errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lowlatseg.checkpoint import load_model
from lowlatseg.cli import main
from lowlatseg.evaluation import long_video as lv
from lowlatseg.evaluation import schedules as sc
from lowlatseg.metrics import Confusion
from lowlatseg.propagation.weights import load_propagation
from lowlatseg.scheduling.weights import load_scheduler

C = 11


def synthetic_table(frames: int = 200, max_gap: int = 6, seed: int = 0) -> sc.PairTable:
    """Random confusions that get worse with the distance to the keyframe, random deviations."""
    rng = np.random.default_rng(seed)
    conf, pred, true = {}, {}, {}
    for t in range(frames):
        for k in range(max(0, t - max_gap), t + 1):
            m = rng.integers(0, 20, (C, C)) * (1 + t - k)
            m[np.diag_indices(C)] = rng.integers(200, 400, C)
            conf[(k, t)] = m.astype(np.int64)
            if k < t:
                true[(k, t)] = float(rng.random() * (t - k) / max_gap)
                pred[(k, t)] = float(rng.random())
    return sc.PairTable(frames, max_gap, conf, pred, true)


def blocks_of(table: sc.PairTable, keys_of: list[int], block: int = 10) -> np.ndarray:
    return lv.block_sums(lv.frame_confusions(table, keys_of), block)


def test_block_sums_and_block_length() -> None:
    per_frame = np.arange(7 * 4).reshape(7, 2, 2)
    b = lv.block_sums(per_frame, 3)
    assert b.shape == (3, 2, 2)
    assert (b[0] == per_frame[:3].sum(0)).all() and (b[2] == per_frame[6]).all()  # the last block: what is left
    assert (b.sum(0) == per_frame.sum(0)).all()
    assert [lv.block_frames(f) for f in (30.0, 29.97, 25.0, 10.0, 0.0, 0.2)] == [60, 60, 50, 20, 60, 1]


def test_batch_miou_is_confusion_miou() -> None:
    rng = np.random.default_rng(1)
    mats = rng.integers(0, 50, (20, C, C))
    mats[3, 4, :] = mats[3, :, 4] = 0  # class 4 absent from target and prediction: left out
    mats[5] = 0  # nothing at all: NaN
    got = lv.batch_miou(mats)
    for m, g in zip(mats, got):
        c = Confusion(C)
        c.matrix = m.astype(np.int64)
        assert (np.isnan(g) and np.isnan(c.miou())) or g == pytest.approx(c.miou(), abs=1e-12)
        assert np.isnan(g) or lv.confusion_miou(m) == c.miou()


def test_fixed_against_itself_and_an_identical_schedule_is_zero() -> None:
    table = synthetic_table()
    fixed = sc.fixed_schedule(table.frames, 5)
    counts = lv.bootstrap_counts(20, 1000, seed=0)
    assert counts.shape == (1000, 20) and (counts.sum(1) == 20).all()
    assert lv.diff_ci(blocks_of(table, fixed), blocks_of(table, fixed), counts) == (0.0, 0.0)
    same = sc.schedule_of(table.frames, sorted(set(fixed)))  # another list, the same schedule
    assert lv.diff_ci(blocks_of(table, same), blocks_of(table, fixed), counts) == (0.0, 0.0)
    # unpaired (other draws for fixed), the same schedule would get a wide interval: the pairing is what makes it 0
    d = lv.resampled_miou(blocks_of(table, same), counts) - lv.resampled_miou(blocks_of(table, fixed), lv.bootstrap_counts(20, 1000, seed=1))
    assert np.percentile(d, 97.5) - np.percentile(d, 2.5) > 0.1


def test_ci_is_deterministic_and_contains_the_point_difference() -> None:
    table = synthetic_table()
    fixed = sc.fixed_schedule(table.frames, 5)
    rule = sc.matched_rule_schedule(table, table.true, sc.count_keys(fixed), rule="accumulated")
    point = sc.score(table, rule) - sc.score(table, fixed)
    a, f = blocks_of(table, rule), blocks_of(table, fixed)
    ci = lv.diff_ci(a, f, lv.bootstrap_counts(len(f), 1000, seed=0))
    assert ci == lv.diff_ci(a, f, lv.bootstrap_counts(len(f), 1000, seed=0))
    assert ci != lv.diff_ci(a, f, lv.bootstrap_counts(len(f), 1000, seed=3))
    assert ci[0] < point < ci[1] and ci[1] - ci[0] > 0.01


def _model_parts(tiny_weights: Path, tiny_prop: Path, tiny_sched: Path):
    model = load_model(tiny_weights)
    _, adaptive, _ = load_propagation(tiny_prop, model)
    pred, _ = load_scheduler(tiny_sched, model)
    return model, adaptive, pred


def test_streamed_table_equals_pair_table(tiny_weights: Path, tiny_prop: Path, tiny_sched: Path) -> None:
    """Pair for pair, given labels, and with the per-frame network's labels as the target."""
    model, adaptive, pred = _model_parts(tiny_weights, tiny_prop, tiny_sched)
    rng = np.random.default_rng(0)
    base = rng.random((3, 48, 96)).astype(np.float32)
    images = [torch.from_numpy(np.ascontiguousarray(np.roll(base, 3 * i, axis=2)[:, :, :64]))[None] for i in range(9)]
    labels = [rng.integers(0, C, (48, 64)).astype(np.uint8) for _ in range(9)]
    with torch.inference_mode():
        teacher = [model(x).max(1).indices[0].numpy().astype(np.uint8) for x in images]  # full network at input size
    for given, streamed_labels in ((labels, labels), (teacher, None)):
        ref = sc.pair_table(model, adaptive, pred, images, given, num_classes=C, max_gap=3)
        got = lv.stream_pair_table(model, adaptive, pred, iter(images), num_classes=C, max_gap=3, labels=streamed_labels)
        assert (got.frames, got.max_gap) == (ref.frames, ref.max_gap)
        assert got.confusion.keys() == ref.confusion.keys() and got.predicted == ref.predicted and got.true == ref.true
        assert all((got.confusion[p] == ref.confusion[p]).all() for p in ref.confusion)
    assert all(np.count_nonzero(got.confusion[(t, t)] - np.diag(np.diag(got.confusion[(t, t)]))) == 0 for t in range(9))
    assert any(got.confusion[(t - 3, t)].trace() < got.confusion[(t - 3, t)].sum() for t in range(3, 9))  # the test can fail


def test_pooled_is_the_sum_of_the_videos() -> None:
    videos = [lv.VideoTable("a.mp4", 5.0, "48x64", synthetic_table(120, seed=1)),
              lv.VideoTable("b.mp4", 10.0, "48x64", synthetic_table(90, seed=2))]
    res = lv.score_interval(videos, 4, shipped_rule="accumulated", bootstrap=200, chance_samples=50)
    rules = ["fixed", "adaptive", "adaptive-instant", "oracle", "oracle-least-deviation"]
    assert [r["rule"] for r in res["pooled"]] == [*rules, "chance"]
    assert [v["blocks"] for v in res["videos"]] == [12, 5]  # 120 frames in blocks of 10, 90 in blocks of 20
    for i, name in enumerate(rules):
        schedules = [lv.rule_schedules(v.table, 4, shipped_rule="accumulated")[name] for v in videos]
        summed = sum(lv.frame_confusions(v.table, s).sum(0) for v, s in zip(videos, schedules))
        assert res["pooled"][i]["miou"] == round(lv.confusion_miou(summed), 2)
        assert res["pooled"][i]["keyframes"] == sum(sc.count_keys(s) for s in schedules)
        for v, s, out in zip(videos, schedules, res["videos"]):
            assert out["rows"][i]["miou"] == round(sc.score(v.table, s), 2)
    assert res["pooled"][0]["vs_fixed_ci95"] == [0.0, 0.0]
    for rows in [res["pooled"], *(v["rows"] for v in res["videos"])]:
        luck = rows[-1]
        assert luck["keyframes"] == rows[0]["keyframes"] and luck["samples"] == 50  # jitter keeps fixed's count
        assert luck["miou_p5"] <= luck["miou_p50"] <= luck["miou_p95"] and luck["vs_fixed_ci95"][0] <= luck["vs_fixed_ci95"][1]
        assert abs(luck["vs_fixed"] - (luck["miou"] - rows[0]["miou"])) <= 0.011  # (each rounded on its own)
        assert all(0.0 <= r["chance_percentile"] <= 100.0 for r in rows[:-1])
    alone = lv.score_interval(videos[:1], 4, shipped_rule="accumulated", bootstrap=200, chance_samples=50)
    assert alone["pooled"] == alone["videos"][0]["rows"]  # one video: the pool is that video
    assert alone == lv.score_interval(videos[:1], 4, shipped_rule="accumulated", bootstrap=200, chance_samples=50)


def _args(tiny_weights: Path, tiny_prop: Path, tiny_sched: Path) -> list[str]:
    return ["eval", "scheduling", "--weights", str(tiny_weights), "--propagation", str(tiny_prop),
            "--scheduler", str(tiny_sched), "--quiet", "--threads", "1"]


def test_eval_scheduling_video_command(small_video: Path, tiny_weights: Path, tiny_prop: Path, tiny_sched: Path,
                                       tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    js = tmp_path / "v.json"
    args = [*_args(tiny_weights, tiny_prop, tiny_sched), "--video", str(small_video), "--video", str(small_video),
            "--size", "48", "--intervals", "2", "3", "--max-gap", "4", "--bootstrap", "50", "--chance-samples", "20",
            "--json", str(js)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "pooled over 2 videos (24 frames)" in printed and "adaptive (instant)" in printed
    assert "the deviation (predicted, and true for the oracles): the share of pixels" in printed
    out = json.loads(js.read_text())
    for key, value in (("size", "48"), ("max_gap", 4), ("seed", 0), ("bootstrap", 50), ("shipped_rule", "instant"),
                       ("deviation_target", "pixels")):
        assert out[key] == value
    assert out["weights"] == str(tiny_weights)
    assert [e["interval"] for e in out["intervals"]] == [2, 3]
    for entry in out["intervals"]:
        assert set(entry) == {"interval", "pooled", "videos"}
        assert len(entry["videos"]) == 2
        for v in entry["videos"]:
            assert {"video", "frames", "fps", "rows"} <= set(v)
            assert v["video"] == str(small_video) and v["frames"] == 12 and v["fps"] == 10.0 and v["resolution"] == "48x64"
        for rows in [entry["pooled"], *(v["rows"] for v in entry["videos"])]:
            assert [r["rule"] for r in rows] == ["fixed", "adaptive", "adaptive-accumulated", "oracle", "oracle-least-deviation",
                                                 "chance"]
            assert all({"rule", "miou", "keyframes", "vs_fixed_ci95"} <= set(r) for r in rows)
            assert rows[0]["vs_fixed_ci95"] == [0.0, 0.0]
            lo, hi = rows[-1]["vs_fixed_ci95"]
            assert lo <= hi
        fixed_keys = -(-12 // entry["interval"])
        assert entry["videos"][0]["rows"][0]["keyframes"] == fixed_keys and entry["pooled"][0]["keyframes"] == 2 * fixed_keys
        strip = lambda rows: [{k: v for k, v in r.items() if k != "chance_percentile"} for r in rows[:4]]  # noqa: E731
        assert strip(entry["videos"][0]["rows"]) == strip(entry["videos"][1]["rows"])  # the same file twice: the same rules


@pytest.mark.parametrize("extra, message", [
    (["--data", "x"], "--video scores unlabelled video against the per-frame network and --data choose"),
    (["--max-gap", "4", "--intervals", "5"], "--max-gap 4 must be at least the largest interval (5)"),
    (["--intervals", "13", "--max-gap", "13"], "has 12 frames, fewer than the largest --intervals value (13)"),
    (["--max-frames", "3", "--intervals", "4"], "has 3 frames to use (--max-frames 3), fewer than the largest"),
])
def test_bad_video_inputs_are_one_sentence(extra: list[str], message: str, small_video: Path, tiny_weights: Path,
                                           tiny_prop: Path, tiny_sched: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*_args(tiny_weights, tiny_prop, tiny_sched), "--video", str(small_video), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    if "frames" in message:
        assert str(small_video) in err


def test_unreadable_video_and_video_only_flags(tmp_path: Path, small_video: Path, tiny_weights: Path, tiny_prop: Path,
                                               tiny_sched: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_text("not a video")
    args = _args(tiny_weights, tiny_prop, tiny_sched)
    assert main([*args, "--video", str(small_video), "--video", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(bad) in err and len(err.splitlines()) == 1
    for flags in (["--size", "48"], ["--bootstrap", "10"], ["--seed", "1"], ["--propagation-method", "flow"]):
        assert main([*args, *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert f"{flags[0]} applies to --video only" in err and len(err.splitlines()) == 1


def test_least_deviation_row_is_the_least_summed_true_deviation_at_fixed_count() -> None:
    """The headroom row: exactly fixed's keyframe count, and no schedule of that count (fixed,
    the rules, jittered fixed) sums less true deviation; on a table whose deviation varies it is
    strictly below fixed's (the test can fail)."""
    table = synthetic_table(120, seed=3)
    for interval in (3, 4):
        rows = lv.rule_schedules(table, interval, shipped_rule="accumulated")
        best = rows["oracle-least-deviation"]
        total = lambda s: sum(table.true[(s[t], t)] for t in range(table.frames) if s[t] != t)  # noqa: E731
        assert sc.count_keys(best) == sc.count_keys(rows["fixed"]) and best[0] == 0
        assert all(t - best[t] <= table.max_gap for t in range(table.frames))
        others = [s for name, s in rows.items() if sc.count_keys(s) == sc.count_keys(best)]
        others += sc.jittered_schedules(table.frames, interval, samples=30, max_gap=table.max_gap, seed=1)
        assert all(total(best) <= total(s) + 1e-9 for s in others)
        assert total(best) < total(rows["fixed"]) - 1e-6


def test_video_scheduling_scores_the_runtime_propagation_method(small_video: Path, tiny_weights: Path, tiny_prop: Path,
                                                                 tiny_sched: Path, tmp_path: Path) -> None:
    """By default the rules are scored with the runtime's propagation (DIS flow); --propagation-method
    adaptive scores the paper's kernels; the JSON says which. Different methods, different tables."""
    from lowlatseg.defaults import DEFAULT_PROPAGATION_METHOD

    out = {}
    for method in (None, "adaptive"):
        js = tmp_path / f"{method}.json"
        extra = [] if method is None else ["--propagation-method", method]
        assert main([*_args(tiny_weights, tiny_prop, tiny_sched), "--video", str(small_video), "--size", "48",
                     "--intervals", "3", "--max-gap", "4", "--bootstrap", "20", "--chance-samples", "0", "--json", str(js),
                     *extra]) == 0
        out[method] = json.loads(js.read_text())
    assert out[None]["propagation_method"] == DEFAULT_PROPAGATION_METHOD == "flow"
    assert out["adaptive"]["propagation_method"] == "adaptive"
    rows = {m: {r["rule"]: r["miou"] for r in o["intervals"][0]["pooled"]} for m, o in out.items()}
    assert rows[None]["fixed"] != rows["adaptive"]["fixed"]
