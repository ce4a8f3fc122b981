"""``lowlatseg eval scheduling`` on a labelled clip: every keyframe rule at exactly the fixed
intervals' keyframe counts, with the true deviation and the ground truth as references, and
what chance gives at the same rate as the yardstick (see evaluation/schedules.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from lowlatseg.checkpoint import DEFAULT_WEIGHTS
from lowlatseg.errors import ParameterError
from lowlatseg.evaluation.commands.loading import open_clip
from lowlatseg.evaluation.schedules import Chance
from lowlatseg.scheduling.rules import RULES


@dataclass(frozen=True)
class SchedulingOptions:
    data: str
    split: str
    intervals: tuple[int, ...] = (2, 3, 5, 8)
    max_gap: int = 12  # longest keyframe gap considered (a keyframe is forced after it)
    weights: str | None = None
    propagation: str | None = None
    scheduler: str | None = None
    max_frames: int = 0
    chance_samples: int = 2000  # jittered fixed schedules scored as chance's yardstick (seed 0; 0: none)
    progress: bool = True


@dataclass(frozen=True)
class PolicyRow:
    """One policy at one interval's keyframe count."""

    interval: int
    policy: str
    miou: float  # rounded to 2 decimals, as saved
    keyframes: int
    keyframe_indices: list[int]
    chance_percentile: float | None = None  # among the jittered schedules (None: no chance samples)
    miou_range_same_count: tuple[float, float] | None = None  # a rule's spread over its numbers at this count
    sweepable: bool = False  # a rule whose number can be swept (saves miou_range_same_count, None included)

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"interval": self.interval, "policy": self.policy, "miou": self.miou,
                               "keyframes": self.keyframes, "keyframe_indices": self.keyframe_indices}
        if self.chance_percentile is not None:
            row["chance_percentile"] = self.chance_percentile
        if self.sweepable:
            spread = self.miou_range_same_count
            row["miou_range_same_count"] = None if spread is None else list(spread)
        return row


@dataclass(frozen=True)
class SchedulingEval:
    data: str
    split: str
    frames: int
    resolution: str
    max_gap: int
    shipped_rule: str
    deviation_target: str  # what the predictor learned and the oracles replay (scheduling/targets.py)
    weights: str
    intervals: tuple[int, ...]
    rows: list[PolicyRow]
    chances: list[dict[str, Any]] | None  # per interval, as saved (None: no chance samples)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"data": self.data, "split": self.split, "frames": self.frames, "resolution": self.resolution,
                               "max_gap": self.max_gap, "shipped_rule": self.shipped_rule,
                               "deviation_target": self.deviation_target, "weights": self.weights,
                               "rows": [r.to_json() for r in self.rows]}
        if self.chances is not None:
            out["chance"] = self.chances
        return out


def check_intervals(intervals: tuple[int, ...], max_gap: int) -> None:
    if any(n < 1 for n in intervals):
        raise ParameterError("every {intervals} value must be at least 1", "intervals")
    if max_gap < max(intervals):
        raise ParameterError(f"{{max_gap}} {max_gap} must be at least the largest interval ({max(intervals)})", "max_gap")


def eval_scheduling(opts: SchedulingOptions) -> SchedulingEval:
    from lowlatseg.data.transforms import to_tensor
    from lowlatseg.evaluation import schedules as sc
    from lowlatseg.scheduling.weights import load_scheduler

    check_intervals(opts.intervals, opts.max_gap)
    clip = open_clip(opts.data, opts.split, opts.weights, opts.propagation, opts.max_frames)
    ds, n, model, adaptive = clip.ds, clip.n, clip.prop.model, clip.prop.adaptive
    predictor, defaults = load_scheduler(opts.scheduler, model)
    images = [to_tensor(ds[i][0]).unsqueeze(0) for i in range(n)]
    labels = [ds[i][1] for i in range(n)]
    bar = tqdm(total=n, desc="pairs", unit="keyframe", disable=not opts.progress)
    table = sc.pair_table(model, adaptive, predictor, images, labels, num_classes=ds.labels.num_classes,
                          max_gap=opts.max_gap, progress=bar.update, weights=defaults.target_weights())
    bar.close()
    rows: list[PolicyRow] = []
    chances: list[dict[str, Any]] = []
    for interval in opts.intervals:
        luck = sc.chance(table, interval, samples=opts.chance_samples) if opts.chance_samples else None
        if luck is not None:
            chances.append(chance_json(luck))
        fixed = sc.fixed_schedule(n, interval)
        want = sc.count_keys(fixed)
        # (name, schedule, the deviations and rule whose number can be swept, or None)
        schedules: list[tuple[str, list[int], Any]] = [("fixed", fixed, None)]
        for source, devs in (("predicted", table.predicted), ("oracle", table.true)):
            for rule in RULES:
                schedules.append((f"{source}-{rule.name}", sc.matched_rule_schedule(table, devs, want, rule=rule), (devs, rule)))
        schedules.append(("oracle-least-deviation", sc.best_schedule(table, sc.deviation_cost(table, table.true), want), None))
        schedules.append(("ground-truth-best", sc.best_schedule(table, sc.linear_cost(table, fixed), want), None))
        for name, keys_of, sweep in schedules:
            miou = sc.score(table, keys_of)
            pct = round(luck.percentile(miou), 1) if luck is not None and len(luck.scores) else None
            spread = None
            if sweep is not None:
                got = sc.same_count_range(table, sweep[0], want, rule=sweep[1])
                spread = None if got is None else (round(got[0], 2), round(got[1], 2))
            rows.append(PolicyRow(interval, name, round(miou, 2), sc.count_keys(keys_of), sorted(set(keys_of)),
                                  chance_percentile=pct, miou_range_same_count=spread, sweepable=sweep is not None))
    h, w = ds[0][0].shape[:2]
    return SchedulingEval(str(opts.data), opts.split, n, f"{h}x{w}", opts.max_gap, defaults.rule, defaults.target,
                          str(opts.weights or DEFAULT_WEIGHTS), tuple(opts.intervals), rows,
                          chances if opts.chance_samples else None)


def chance_json(luck: Chance) -> dict[str, Any]:
    """:class:`~lowlatseg.evaluation.schedules.Chance` as saved (fixed's mIoU is phase 0's)."""
    s = luck.scores
    fixed = luck.phases[0][1] if luck.phases and luck.phases[0][0] == 0 else float("nan")
    out: dict[str, Any] = {
        "interval": luck.interval,
        "fixed_phases": [{"phase": p, "miou": round(m, 2), "keyframes": k} for p, m, k in luck.phases],
        "jitter": luck.jitter, "samples": int(len(s)), "seed": 0,
    }
    if len(s):
        out.update({"miou_p5": round(float(np.percentile(s, 5)), 2), "miou_p50": round(float(np.median(s)), 2),
                    "miou_p95": round(float(np.percentile(s, 95)), 2),
                    "share_above_fixed": round(float(np.mean(s > fixed + 1e-9)), 3)})
    return out
