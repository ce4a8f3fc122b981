"""eval scheduling: exact scores of any schedule from a (keyframe, frame) table, checked against
the online protocol, and the policies' contracts (keyframe counts, forced gaps, the DP optimum)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lowlatseg.checkpoint import load_model
from lowlatseg.cli import main
from lowlatseg.evaluation import schedules as sc
from lowlatseg.evaluation.video import Row, run_protocol
from lowlatseg.propagation.weights import load_propagation
from lowlatseg.scheduling.weights import load_scheduler

N = 10


@pytest.fixture
def table_and_data(tiny_weights: Path, tiny_prop: Path, tiny_sched: Path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    base = rng.random((3, 48, 96)).astype(np.float32)
    images = [torch.from_numpy(np.ascontiguousarray(np.roll(base, 3 * i, axis=2)[:, :, :64]))[None] for i in range(N)]
    labels = [rng.integers(0, 11, (48, 64)).astype(np.uint8) for _ in range(N)]
    model = load_model(tiny_weights)
    _, adaptive, _ = load_propagation(tiny_prop, model)
    pred, _ = load_scheduler(tiny_sched, model)
    table = sc.pair_table(model, adaptive, pred, images, labels, num_classes=11, max_gap=4)
    return table, model, adaptive, images, labels


def test_fixed_schedule_scores_like_the_online_protocol(table_and_data) -> None:
    table, model, adaptive, images, labels = table_and_data
    for interval in (1, 2, 3):
        res = run_protocol(model, [Row("adaptive", adaptive, True)], zip(images, labels), interval=interval, num_classes=11)
        assert sc.score(table, sc.fixed_schedule(N, interval)) == pytest.approx(res.rows[0]["miou"], abs=0.01)


def test_rules_hit_the_count_and_respect_the_gap(table_and_data) -> None:
    table = table_and_data[0]
    every = sc.rule_schedule(table, table.predicted, 0.0, rule="instant")
    assert every == list(range(N))
    never = sc.rule_schedule(table, table.predicted, 64.0, rule="accumulated")
    assert sorted(set(never)) == [0, 5]  # only the forced keyframes, once a gap would exceed max_gap
    steady = {pair: 0.1 * (pair[1] - pair[0]) for pair in table.predicted}  # deviation growing 0.1 a frame
    for rule in ("instant", "accumulated"):
        s = sc.matched_rule_schedule(table, steady, 4, rule=rule)
        assert sorted(set(s)) == [0, 3, 6, 9]  # 4 keyframes are reachable here, every 3 frames
        assert sc.same_count_range(table, steady, 4, rule=rule) == (sc.score(table, s),) * 2  # one placement only
        s = sc.matched_rule_schedule(table, table.true, 4, rule=rule)
        assert all(s[t] <= t and t - s[t] <= table.max_gap for t in range(N))


def test_ground_truth_best_is_optimal_for_its_objective(table_and_data) -> None:
    table = table_and_data[0]
    fixed = sc.fixed_schedule(N, 3)
    cost = sc.linear_cost(table, fixed)
    best = sc.best_schedule(table, cost, sc.count_keys(fixed))
    total = lambda s: sum(cost[(s[t], t)] for t in range(N))  # noqa: E731
    assert sc.count_keys(best) == sc.count_keys(fixed) and best[0] == 0
    assert total(best) <= total(fixed) + 1e-9
    for other in ([0, 0, 2, 2, 2, 5, 5, 5, 5, 9], [0, 1, 1, 1, 1, 5, 5, 5, 8, 8]):  # other valid 4-key schedules
        assert total(best) <= total(other) + 1e-9
    with pytest.raises(ValueError, match="cannot cover"):
        sc.best_schedule(table, cost, 1)  # 10 frames, gaps of at most 4


def test_least_deviation_schedule_is_the_brute_force_optimum(table_and_data) -> None:
    """Against every valid schedule (frame 0 a keyframe, gaps within max_gap), summing the true
    deviations straight from the table: a wrong cost (zeros, negated, off by a pair) fails."""
    from itertools import combinations

    table = table_and_data[0]
    total = lambda s: sum(table.true[(s[t], t)] for t in range(N) if s[t] != t)  # noqa: E731
    for n_keys in (3, 4, 5):
        valid = []
        for rest in combinations(range(1, N), n_keys - 1):
            keys = (0, *rest)
            s = [max(k for k in keys if k <= t) for t in range(N)]
            if all(t - s[t] <= table.max_gap for t in range(N)):
                valid.append(s)
        best = sc.best_schedule(table, sc.deviation_cost(table, table.true), n_keys)
        assert sc.count_keys(best) == n_keys and best in valid
        assert total(best) == pytest.approx(min(total(s) for s in valid), abs=1e-12)
        assert total(best) < max(total(s) for s in valid)  # the choice matters: the test can fail


def test_phase_schedules_are_the_fixed_interval_shifted() -> None:
    assert sc.phase_schedule(12, 4, 0) == sc.fixed_schedule(12, 4)
    assert sorted(set(sc.phase_schedule(12, 4, 3))) == [0, 3, 7, 11]
    assert sc.schedule_of(6, [4, 0, 2]) == [0, 0, 2, 2, 4, 4]
    for bad in ([1, 3], [0, 6]):  # frame 0 missing, a keyframe past the clip
        with pytest.raises(ValueError, match="keyframes must include frame 0"):
            sc.schedule_of(6, bad)
    with pytest.raises(ValueError, match="phase must be in 0..3"):
        sc.phase_schedule(12, 4, 4)


def test_jittered_schedules_keep_the_count_the_spacing_and_the_seed() -> None:
    frames, interval, max_gap = 41, 5, 8
    fixed_keys = sorted(set(sc.fixed_schedule(frames, interval)))
    draws = sc.jittered_schedules(frames, interval, samples=300, max_gap=max_gap, seed=3)
    assert len(draws) == 300
    for s in draws:
        keys = sorted(set(s))
        assert len(keys) == len(fixed_keys) and keys[0] == 0
        assert all(abs(a - b) <= interval // 2 for a, b in zip(keys, fixed_keys))  # each moved by at most 2
        assert all(s[t] <= t and t - s[t] <= max_gap for t in range(frames))
    assert len({tuple(s) for s in draws}) > 50  # random, not one schedule repeated
    assert draws == sc.jittered_schedules(frames, interval, samples=300, max_gap=max_gap, seed=3)
    assert draws != sc.jittered_schedules(frames, interval, samples=300, max_gap=max_gap, seed=4)
    assert sc.jittered_schedules(frames, interval, samples=5, max_gap=max_gap, jitter=0) == [sc.fixed_schedule(frames, interval)] * 5
    # gaps of at most 5 leave room only for fixed itself: nothing else comes back
    assert sc.jittered_schedules(frames, interval, samples=5, max_gap=interval - 1, seed=0) in ([], [sc.fixed_schedule(frames, interval)] * 5)


def test_chance_percentile_counts_below_and_half_the_ties() -> None:
    luck = sc.Chance(interval=5, phases=[(0, 60.0, 3)], jitter=2, scores=np.array([59.0, 60.0, 60.0, 61.0]))
    assert luck.percentile(60.0) == pytest.approx(50.0)  # one below, two ties
    assert luck.percentile(58.0) == 0.0 and luck.percentile(62.0) == 100.0
    assert luck.percentile(60.5) == pytest.approx(75.0)


def test_chance_scores_phases_and_draws_on_the_table(table_and_data) -> None:
    table = table_and_data[0]
    luck = sc.chance(table, 3, samples=50, seed=0)
    assert [p for p, _, _ in luck.phases] == [0, 1, 2]
    assert luck.phases[0][1] == pytest.approx(sc.score(table, sc.fixed_schedule(N, 3)))
    expected = [sc.score(table, s) for s in sc.jittered_schedules(N, 3, samples=50, max_gap=table.max_gap, seed=0)]
    assert luck.scores.tolist() == pytest.approx(expected)


def test_eval_scheduling_command(tiny_camvid: Path, tiny_weights: Path, tiny_prop: Path, tiny_sched: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    js = tmp_path / "s.json"
    args = ["eval", "scheduling", "--data", str(tiny_camvid), "--split", "train", "--weights", str(tiny_weights),
            "--propagation", str(tiny_prop), "--scheduler", str(tiny_sched), "--quiet", "--threads", "1"]
    assert main([*args, "--intervals", "2", "--max-gap", "3", "--json", str(js)]) == 0
    assert "the deviation (predicted, and true for the oracles): the share of pixels" in capsys.readouterr().out
    rows = json.loads(js.read_text())["rows"]
    assert [r["policy"] for r in rows] == ["fixed", "predicted-instant", "predicted-accumulated", "oracle-instant",
                                           "oracle-accumulated", "oracle-least-deviation", "ground-truth-best"]
    assert rows[0]["keyframes"] == 2 and rows[-1]["keyframes"] == 2
    out = json.loads(js.read_text())
    assert out["deviation_target"] == "pixels"  # the tiny file predates targets: the paper's pixel share
    (luck,) = out["chance"]
    assert luck["interval"] == 2 and [p["phase"] for p in luck["fixed_phases"]] == [0, 1]
    assert luck["fixed_phases"][0]["miou"] == rows[0]["miou"]
    assert luck["samples"] > 0 and luck["miou_p5"] <= luck["miou_p50"] <= luck["miou_p95"]
    assert 0.0 <= luck["share_above_fixed"] <= 1.0
    assert all(0.0 <= r["chance_percentile"] <= 100.0 for r in rows)
    assert main([*args, "--intervals", "2", "--max-gap", "3", "--chance-samples", "0", "--json", str(js)]) == 0
    out = json.loads(js.read_text())
    assert "chance" not in out and not any("chance_percentile" in r for r in out["rows"])
    assert main([*args, "--intervals", "5", "--max-gap", "3"]) == 2
    assert "--max-gap 3 must be at least the largest interval" in capsys.readouterr().err


def test_oracle_policy_online_matches_the_table_replay(tiny_weights: Path, tiny_prop: Path, tiny_sched: Path) -> None:
    """The Oracle policy in a runtime makes exactly the keyframes that eval scheduling's replay
    of the same rule on the true-deviation table makes."""
    from lowlatseg.data.transforms import to_tensor
    from lowlatseg.runtime.stream import StreamRuntime
    from lowlatseg.scheduling.policies import Oracle

    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (48, 96, 3), dtype=np.uint8)
    frames = [np.ascontiguousarray(np.roll(base, 3 * i, axis=1)[:, :64]) for i in range(N)]
    labels = [rng.integers(0, 11, (48, 64)).astype(np.uint8) for _ in range(N)]
    model = load_model(tiny_weights)
    _, adaptive, _ = load_propagation(tiny_prop, model)
    pred, _ = load_scheduler(tiny_sched, model)
    table = sc.pair_table(model, adaptive, pred, [to_tensor(f).unsqueeze(0) for f in frames], labels,
                          num_classes=11, max_gap=4)
    schedules = []
    for rule, values in (("instant", (0.3, 0.36, 0.45)), ("accumulated", (0.51, 1.01))):  # between multiples of 1/48
        for v in values:
            expected = sc.rule_schedule(table, table.true, v, rule=rule)
            rt = StreamRuntime(model, method=adaptive, size=(48, 64),
                               policy=Oracle(model, adaptive, v, rule=rule, max_interval=table.max_gap + 1))
            with rt:
                assert [rt.step(f).keyframe_index for f in frames] == expected, (rule, v)
            schedules.append(tuple(expected))
    assert len(set(schedules)) > 3  # the thresholds make different schedules: the comparison can fail
