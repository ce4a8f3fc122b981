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
        assert sc.score(table, sc.fixed_schedule(N, interval)) == pytest.approx(res["rows"][0]["miou"], abs=0.01)


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


def test_eval_scheduling_command(tiny_camvid: Path, tiny_weights: Path, tiny_prop: Path, tiny_sched: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    js = tmp_path / "s.json"
    args = ["eval", "scheduling", "--data", str(tiny_camvid), "--split", "train", "--weights", str(tiny_weights),
            "--propagation", str(tiny_prop), "--scheduler", str(tiny_sched), "--quiet", "--threads", "1"]
    assert main([*args, "--intervals", "2", "--max-gap", "3", "--json", str(js)]) == 0
    rows = json.loads(js.read_text())["rows"]
    assert [r["policy"] for r in rows] == ["fixed", "predicted-instant", "predicted-accumulated", "oracle-instant",
                                           "oracle-accumulated", "oracle-least-deviation", "ground-truth-best"]
    assert rows[0]["keyframes"] == 2 and rows[-1]["keyframes"] == 2
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
