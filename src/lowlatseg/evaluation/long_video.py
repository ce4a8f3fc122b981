"""Keyframe rules on long unlabelled video: a streamed pair table, and a paired block bootstrap.

The labelled-clip command (evaluation/schedules.py) keeps every frame's features to build its
(keyframe k, frame t) table; a video of a thousand frames does not fit that way.
:func:`stream_pair_table` builds the same table in one pass: it keeps only the last
``max_gap + 1`` frames' keyframe states (image, F_l, F_h) and, for each new frame t, runs the
pairs (k, t) for every k in [t - max_gap, t], storing only what a pair leaves (its 11 x 11
confusion, predicted and true deviation). Without labels the target of frame t is the per-frame
network's own labels of t at the network input size (agreement, as in ``eval agreement``).

Every schedule (``keys_of[t]`` = the keyframe frame t comes from) is then scored exactly from the
table, and its difference to ``fixed`` gets a 95 % interval from a paired bootstrap over blocks
of consecutive frames (:func:`block_sums`, :func:`bootstrap_counts`, :func:`diff_ci`): a block
is about 2 seconds of video (``round(2 * fps)`` frames; neighbouring frames are not independent,
blocks nearly are), blocks are drawn with replacement, the *same* draws for the rule and for
fixed, and each draw's mIoU comes from the summed confusions of the blocks it drew. Pooled over
several videos the blocks of all of them are drawn together (a block never spans two videos).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lowlatseg.metrics import Confusion
from lowlatseg.evaluation.schedules import (
    Chance, Pair, PairTable, best_schedule, count_keys, default_jitter, deviation_cost, fixed_schedule, jittered_schedules,
    matched_rule_schedule, pair_result, schedule_of, score,
)
from lowlatseg.nn.labels import upsampled_labels
from lowlatseg.nn.splitnet import SplitSegNet, to_labels
from lowlatseg.propagation.methods import Current, KeyState, Propagator
from lowlatseg.propagation.produce import make_key
from lowlatseg.scheduling.predictor import Predictor
from lowlatseg.scheduling.rules import other_rules

BLOCK_SECONDS = 2.0
DEFAULT_BLOCK_FPS = 30.0  # the rate assumed for blocks when a container states none


@torch.inference_mode()
def stream_pair_table(
    model: SplitSegNet, method: Propagator, predictor: Predictor, images: Iterable[torch.Tensor], *,
    num_classes: int, max_gap: int, labels: Iterable[np.ndarray] | None = None,
    progress: Callable[[int], None] | None = None, weights: torch.Tensor | None = None,
) -> PairTable:
    """The :func:`~lowlatseg.evaluation.schedules.pair_table` of a stream of images (1 x 3 x H x W
    each, in time order), built holding at most ``max_gap + 1`` keyframe states. ``labels``
    (H x W each, 255 = void) are the targets; None: the per-frame network's labels of each frame
    at its input size (``head(F_h, F_l)`` upsampled as every pair is). Given the same labels it
    equals ``pair_table`` pair for pair (tests/test_long_video_scheduling.py). ``weights``: the
    true deviation is class-weighted (scheduling/targets.py; None: the pixel share)."""
    window: deque[KeyState] = deque(maxlen=max_gap + 1)
    label_iter = iter(labels) if labels is not None else None
    conf: dict[Pair, np.ndarray] = {}
    pred: dict[Pair, float] = {}
    true: dict[Pair, float] = {}
    n = 0
    for t, image in enumerate(images):
        f_low = model.low(image)
        window.append(make_key(model, t, image, f_low))
        own = window[-1]
        grid = model.head(own.f_high, f_low)
        teacher = to_labels(grid)  # feature grid, for the true deviation
        if label_iter is None:
            target = upsampled_labels(grid, (image.shape[-2], image.shape[-1]))[0]
        else:
            target = torch.from_numpy(np.asarray(next(label_iter)).astype(np.int64))
        cur = Current(index=t, image=image, f_low=f_low)
        for key in window:
            k = key.index
            conf[(k, t)], p, d = pair_result(model, method, predictor, key, cur, teacher, target, num_classes=num_classes,
                                             weights=weights)
            if p is not None and d is not None:
                true[(k, t)], pred[(k, t)] = d, p
        n += 1
        if progress:
            progress(1)
    return PairTable(n, max_gap, conf, pred, true)


def block_frames(fps: float) -> int:
    """Frames per bootstrap block: ``round(2 * fps)``, at least 1 (fps 0, unknown: 30 assumed)."""
    return max(1, int(round(BLOCK_SECONDS * (fps if fps > 0 else DEFAULT_BLOCK_FPS))))


def frame_confusions(table: PairTable, keys_of: Sequence[int]) -> np.ndarray:
    """frames x C x C: the confusion of every frame under a schedule (their sum is what
    :func:`~lowlatseg.evaluation.schedules.score` scores)."""
    return np.stack([table.confusion[(keys_of[t], t)] for t in range(table.frames)])


def block_sums(per_frame: np.ndarray, block: int) -> np.ndarray:
    """frames x C x C -> blocks x C x C: sums over consecutive runs of ``block`` frames (the last
    block holds what is left, possibly fewer)."""
    starts = np.arange(0, len(per_frame), block)
    return np.add.reduceat(per_frame, starts, axis=0)


def batch_miou(matrices: np.ndarray) -> np.ndarray:
    """... x C x C confusions (rows = target) -> mIoU in %, exactly as
    :meth:`~lowlatseg.metrics.Confusion.miou` (a class absent from both target and
    prediction left out; NaN when every class is)."""
    m = np.asarray(matrices)
    tp = np.diagonal(m, axis1=-2, axis2=-1).astype(np.float64)
    denom = m.sum(-2) + m.sum(-1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)
    out = np.full(iou.shape[:-1], np.nan)
    ok = np.isfinite(iou).any(-1)
    out[ok] = np.nanmean(iou[ok], axis=-1) * 100
    return out


def confusion_miou(matrix: np.ndarray) -> float:
    """mIoU in % of one C x C confusion, by :meth:`~lowlatseg.metrics.Confusion.miou` itself."""
    c = Confusion(matrix.shape[0])
    c.matrix = np.asarray(matrix, dtype=np.int64)
    return c.miou()


def bootstrap_counts(n_blocks: int, samples: int, seed: int = 0) -> np.ndarray:
    """samples x n_blocks: how often each block is drawn in each resample (``n_blocks`` draws with
    replacement, uniform). Deterministic for a seed; share one array between the schedules
    compared so that the bootstrap is paired."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_blocks, size=(samples, n_blocks))
    counts = np.zeros((samples, n_blocks), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(samples), n_blocks), idx.ravel()), 1)
    return counts


def resampled_miou(blocks: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """mIoU of every resample: blocks x C x C block confusions, samples x blocks counts."""
    c = blocks.shape[-1]
    summed = counts @ blocks.reshape(len(blocks), c * c)
    return batch_miou(summed.reshape(len(counts), c, c))


def diff_ci(blocks: np.ndarray, fixed_blocks: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """95 % percentile interval of mIoU(schedule) - mIoU(fixed) over the resamples ``counts``
    (the same blocks drawn for both). Resamples where either mIoU is undefined are dropped."""
    d = resampled_miou(blocks, counts) - resampled_miou(fixed_blocks, counts)
    d = d[np.isfinite(d)]
    if not len(d):
        return float("nan"), float("nan")
    lo, hi = np.percentile(d, [2.5, 97.5])
    return float(lo), float(hi)


# ---------------------------------------------------------------- scoring videos and their pool
@dataclass(frozen=True)
class VideoTable:
    """One video's pair table (its own stream: frame 0 a keyframe) and its rate."""

    video: str
    fps: float
    resolution: str  # network input, HxW
    table: PairTable

    @property
    def block(self) -> int:
        return block_frames(self.fps)


def rule_schedules(table: PairTable, interval: int, *, shipped_rule: str) -> dict[str, list[int]]:
    """``fixed``; ``adaptive`` (the shipped rule on the predicted deviation), ``adaptive-<other
    rule>``, and ``oracle`` (the shipped rule on the true deviation), each at the keyframe count
    of fixed as near as its number allows (:func:`~lowlatseg.evaluation.schedules.matched_rule_schedule`);
    and ``oracle-least-deviation``, the schedule with the least true deviation summed over the
    video at exactly fixed's count (:func:`~lowlatseg.evaluation.schedules.best_schedule`): it
    sees the future, so no scheduler can run it; it measures how much a deviation-driven
    scheduler could gain at all."""
    fixed = fixed_schedule(table.frames, interval)
    want = count_keys(fixed)
    other = other_rules(shipped_rule)[0].name
    return {
        "fixed": fixed,
        "adaptive": matched_rule_schedule(table, table.predicted, want, rule=shipped_rule),
        f"adaptive-{other}": matched_rule_schedule(table, table.predicted, want, rule=other),
        "oracle": matched_rule_schedule(table, table.true, want, rule=shipped_rule),
        "oracle-least-deviation": best_schedule(table, deviation_cost(table, table.true), want),
    }


def _dense(table: PairTable) -> np.ndarray:
    """frames x (max_gap + 1) x C x C: [t, g] = the confusion of pair (t - g, t) (zeros if none)."""
    c = table.confusion[(0, 0)].shape[0]
    out = np.zeros((table.frames, table.max_gap + 1, c, c), dtype=np.int64)
    for (k, t), m in table.confusion.items():
        out[t, t - k] = m
    return out


def _r2(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 2) + 0.0  # + 0.0: no -0.0


def _row(rule: str, miou: float, keys: int, fixed: float, ci: tuple[float, float]) -> dict[str, Any]:
    return {"rule": rule, "miou": _r2(miou), "keyframes": keys, "vs_fixed": _r2(miou - fixed),
            "vs_fixed_ci95": [_r2(ci[0]), _r2(ci[1])]}


@dataclass
class _Part:
    """What one video contributes to one interval's pooled result."""

    totals: dict[str, np.ndarray]  # rule -> C x C
    blocks: dict[str, np.ndarray]  # rule -> blocks x C x C
    keys: dict[str, int]
    draw_keys: np.ndarray  # the chance schedules' keyframes, samples x keyframes (the same count in all)
    draw_totals: np.ndarray  # samples x C x C


def _median_draw(scores: np.ndarray) -> int:
    """Index of the chance schedule ranked at the median (the lower middle one of an even count)."""
    return int(np.argsort(scores, kind="stable")[(len(scores) - 1) // 2])


def _chance_row(scores: np.ndarray, median_blocks: np.ndarray, fixed: float, fixed_blocks: np.ndarray,
                counts: np.ndarray, keys: int, jitter: int) -> dict[str, Any]:
    """The chance row: the chance schedule ranked at the median (its mIoU, difference and CI; its
    blocks: ``median_blocks``) and the spread of all of them (p5, p50, p95, share above fixed)."""
    mid = float(scores[_median_draw(scores)])
    row = _row("chance", mid, keys, fixed, diff_ci(median_blocks, fixed_blocks, counts))
    row.update({"miou_p5": _r2(float(np.percentile(scores, 5))), "miou_p50": _r2(float(np.median(scores))),
                "miou_p95": _r2(float(np.percentile(scores, 95))),
                "share_above_fixed": round(float(np.mean(scores > fixed + 1e-9)), 3), "samples": int(len(scores)),
                "jitter": jitter})
    return row


def _with_percentiles(rows: list[dict[str, Any]], scores: np.ndarray, interval: int, jitter: int,
                      mious: dict[str, float]) -> None:
    """``chance_percentile`` of every rule row: the share of chance schedules it beats, ties half."""
    luck = Chance(interval, [], jitter, scores)
    for r in rows:
        if r["rule"] in mious:
            r["chance_percentile"] = round(luck.percentile(mious[r["rule"]]), 1)


def _score_video(v: VideoTable, interval: int, *, shipped_rule: str, bootstrap: int, seed: int, draw_seed: int,
                 chance_samples: int) -> tuple[_Part, dict[str, Any]]:
    table = v.table
    jitter = default_jitter(interval)
    schedules = rule_schedules(table, interval, shipped_rule=shipped_rule)
    dense = _dense(table)
    frames = np.arange(table.frames)
    per_frame = {name: dense[frames, frames - np.asarray(s)] for name, s in schedules.items()}
    draws = np.array(jittered_schedules(table.frames, interval, samples=chance_samples, max_gap=table.max_gap,
                                        seed=draw_seed, jitter=jitter), dtype=np.int64).reshape(-1, table.frames)
    draw_totals = np.stack([dense[frames, frames - d].sum(0) for d in draws]) if len(draws) else np.zeros((0, *dense.shape[2:]), np.int64)
    draw_keys = (np.array([np.unique(d) for d in draws], dtype=np.int32).reshape(len(draws), -1) if len(draws)
                 else np.zeros((0, 0), np.int32))  # --chance-samples 0: no chance schedules
    part = _Part({k: f.sum(0) for k, f in per_frame.items()}, {k: block_sums(f, v.block) for k, f in per_frame.items()},
                 {k: count_keys(s) for k, s in schedules.items()}, draw_keys, draw_totals)
    counts = bootstrap_counts(len(part.blocks["fixed"]), bootstrap, seed)
    mious = {k: score(table, s) for k, s in schedules.items()}
    rows = [_row(k, mious[k], part.keys[k], mious["fixed"], diff_ci(part.blocks[k], part.blocks["fixed"], counts))
            for k in schedules]
    if len(draws):
        scores = batch_miou(draw_totals)
        mid = block_sums(dense[frames, frames - draws[_median_draw(scores)]], v.block)
        rows.append(_chance_row(scores, mid, mious["fixed"], part.blocks["fixed"], counts, part.keys["fixed"], jitter))
        _with_percentiles(rows, scores, interval, jitter, mious)
    return part, {"video": v.video, "frames": table.frames, "fps": v.fps, "resolution": v.resolution,
                  "block_frames": v.block, "blocks": len(part.blocks["fixed"]), "rows": rows}


def score_interval(videos: Sequence[VideoTable], interval: int, *, shipped_rule: str, bootstrap: int = 1000,
                   seed: int = 0, chance_samples: int = 2000) -> dict[str, Any]:
    """One interval: ``{"interval", "pooled": rows, "videos": [{"video", "frames", "fps", "rows", ...}]}``.

    Rows: :func:`rule_schedules` and (``chance_samples`` > 0) ``chance``: jittered fixed schedules
    (:func:`~lowlatseg.evaluation.schedules.jittered_schedules`, video i drawn with seed
    ``seed + i``; the pooled draw j is draw j of every video, so the pool has as many draws as the
    video with fewest); its ``miou``, ``vs_fixed`` and ``vs_fixed_ci95`` are those of the draw
    ranked at the median, ``miou_p5`` / ``miou_p50`` / ``miou_p95`` and ``share_above_fixed`` those
    of all draws; every other row gets its ``chance_percentile`` among them. Each row's
    ``vs_fixed_ci95`` comes from :func:`diff_ci` with ``bootstrap`` resamples (seed ``seed``) of the
    video's blocks, pooled: of all videos' blocks; pooled mIoU is that of the confusions summed
    over all videos."""
    if not videos:
        raise ValueError("no videos to score")
    scored = [_score_video(v, interval, shipped_rule=shipped_rule, bootstrap=bootstrap, seed=seed, draw_seed=seed + i,
                           chance_samples=chance_samples) for i, v in enumerate(videos)]
    parts = [p for p, _ in scored]
    names = list(parts[0].totals)
    blocks = {k: np.concatenate([p.blocks[k] for p in parts]) for k in names}
    counts = bootstrap_counts(len(blocks["fixed"]), bootstrap, seed)
    mious = {k: confusion_miou(np.sum([p.totals[k] for p in parts], axis=0)) for k in names}
    pooled = [_row(k, mious[k], sum(p.keys[k] for p in parts), mious["fixed"], diff_ci(blocks[k], blocks["fixed"], counts))
              for k in names]
    n_draws = min(len(p.draw_keys) for p in parts)
    if n_draws:
        scores = batch_miou(np.sum([p.draw_totals[:n_draws] for p in parts], axis=0))
        j = _median_draw(scores)
        mid = np.concatenate([block_sums(frame_confusions(v.table, schedule_of(v.table.frames, p.draw_keys[j].tolist())), v.block)
                              for v, p in zip(videos, parts)])
        jitter = default_jitter(interval)
        pooled.append(_chance_row(scores, mid, mious["fixed"], blocks["fixed"], counts, sum(p.keys["fixed"] for p in parts), jitter))
        _with_percentiles(pooled, scores, interval, jitter, mious)
    return {"interval": interval, "pooled": pooled, "videos": [row for _, row in scored]}
