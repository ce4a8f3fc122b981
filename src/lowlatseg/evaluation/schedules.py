"""How much can keyframe scheduling gain on a labelled clip? (``lowlatseg eval scheduling``)

For every pair (keyframe k, frame t) with 0 <= t - k <= ``max_gap`` we run adaptive
propagation with fusion once and keep: the confusion matrix of frame t against its ground
truth, the scheduler's *predicted* deviation and the *true* deviation (fraction of feature-grid
pixels whose propagated label differs from the per-frame network's). Any schedule (a keyframe
for every frame) is then scored exactly by summing the confusions of its pairs, so many
policies can be compared at exactly the same keyframe count:

* ``fixed``: a keyframe every N frames (equals ``eval video``'s ``adaptive`` row);
* ``predicted-instant`` / ``predicted-accumulated``: the shipped scheduler's two rules;
* ``oracle-instant`` / ``oracle-accumulated``: the same rules on the true deviation (what a
  perfect deviation predictor would do);
* ``oracle-least-deviation``: the schedule with the least true deviation summed over all frames,
  found by a dynamic program: optimal for the objective a deviation-driven scheduler pursues,
  not for mIoU (a rule can score higher by pursuing it less well). If it scores below ``fixed``,
  minimising the deviation does not maximise mIoU on that clip;
* ``ground-truth-best``: the schedule a dynamic program finds with the labels themselves
  (minimising a first-order expansion of the mIoU loss around the fixed schedule): an estimate
  of the headroom, not a policy anyone can run.

And what chance alone does at the same rate (:func:`chance`), the yardstick for a difference
between two policies on a short clip: the fixed interval started at every phase, and fixed
schedules whose keyframes are each moved at random by up to half the interval (an uninformed
scheduler that keeps the rate and the spacing roughly even). A policy whose mIoU sits inside
that spread is not shown to be better or worse than fixed by this clip.

All rules are sequential (no low-latency delay) and gaps longer than ``max_gap`` are cut by a
forced keyframe in every policy.

On long unlabelled video (``eval scheduling --video``) evaluation/long_video.py builds the same
table in one pass (:func:`pair_result` for each pair), with the per-frame network's labels as
the ground truth, and scores the rules there with a bootstrap interval against ``fixed``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lowlatseg.metrics import Confusion
from lowlatseg.nn.labels import upsampled_labels
from lowlatseg.nn.splitnet import SplitSegNet, to_labels
from lowlatseg.propagation.methods import Current, KeyState, Propagator
from lowlatseg.propagation.produce import make_key, propagated_logits
from lowlatseg.scheduling.predictor import Predictor
from lowlatseg.scheduling.rules import AdaptiveRule, as_rule, decide_keyframe
from lowlatseg.scheduling.targets import label_deviation

Pair = tuple[int, int]


@dataclass
class PairTable:
    """Per-(k, t) results; ``frames`` frames, pairs with t - k <= ``max_gap``."""

    frames: int
    max_gap: int
    confusion: dict[Pair, np.ndarray]  # num_classes x num_classes, rows = ground truth
    predicted: dict[Pair, float]  # scheduler's deviation (t > k)
    true: dict[Pair, float]  # true deviation against the per-frame network (t > k)


@torch.inference_mode()
def pair_table(
    model: SplitSegNet, method: Propagator, predictor: Predictor,
    images: Sequence[torch.Tensor], labels: Sequence[np.ndarray], *, num_classes: int, max_gap: int,
    progress: Callable[[int], None] | None = None, weights: torch.Tensor | None = None,
) -> PairTable:
    """images: 1 x 3 x H x W each, in time order; labels: H x W (255 = void). ``weights``: the
    true deviation is class-weighted (scheduling/targets.py; None: the pixel share)."""
    n = len(images)
    f_lows = [model.low(x) for x in images]
    keys = [make_key(model, i, images[i], f_lows[i]) for i in range(n)]
    teacher = [to_labels(model.head(keys[i].f_high, f_lows[i])) for i in range(n)]  # feature grid
    conf: dict[Pair, np.ndarray] = {}
    pred: dict[Pair, float] = {}
    true: dict[Pair, float] = {}
    for k in range(n):
        for t in range(k, min(n, k + max_gap + 1)):
            cur = Current(index=t, image=images[t], f_low=f_lows[t])
            target = torch.from_numpy(labels[t].astype(np.int64))
            conf[(k, t)], p, d = pair_result(model, method, predictor, keys[k], cur, teacher[t], target, num_classes=num_classes,
                                             weights=weights)
            if p is not None and d is not None:
                true[(k, t)], pred[(k, t)] = d, p
        if progress:
            progress(1)
    return PairTable(n, max_gap, conf, pred, true)


def pair_result(
    model: SplitSegNet, method: Propagator, predictor: Predictor, key: KeyState, cur: Current,
    teacher: torch.Tensor, target: torch.Tensor, *, num_classes: int, weights: torch.Tensor | None = None,
) -> tuple[np.ndarray, float | None, float | None]:
    """One (keyframe ``key``, frame ``cur``) pair of a :class:`PairTable`: (confusion of the
    frame's labels against ``target`` (H x W at the network input size, 255 = void), predicted
    deviation, true deviation against ``teacher``, the per-frame network's 1 x h x w labels on the
    feature grid: the pixel share, or class-weighted with ``weights``). A keyframe's own frame (same index) is the per-frame result and has no
    deviations (None, None)."""
    size = (cur.image.shape[-2], cur.image.shape[-1])
    pred = true = None
    if cur.index == key.index:
        grid_logits = model.head(key.f_high, cur.f_low)
    else:
        grid_logits = propagated_logits(model, method, key, cur, fuse=True)
        true = float(label_deviation(to_labels(grid_logits), teacher, weights)[0])
        pred = float(predictor(key.f_low, cur.f_low)[0])
    # the head's own upsampling (bilinear, align_corners=False) then the argmax, as the runtime labels a
    # frame (nn/labels.py: equal to interpolating every logit, at a fraction of the cost)
    c = Confusion(num_classes)
    c.update(upsampled_labels(grid_logits, size)[0], target)
    return c.matrix, pred, true


def score(table: PairTable, keys_of: Sequence[int]) -> float:
    """mIoU of a schedule (``keys_of[t]`` = the keyframe frame t is produced from)."""
    c = Confusion(table.confusion[(0, 0)].shape[0])
    for t in range(table.frames):
        c.matrix += table.confusion[(keys_of[t], t)]
    return c.miou()


def fixed_schedule(frames: int, interval: int) -> list[int]:
    return [t - t % interval for t in range(frames)]


def schedule_of(frames: int, keys: Sequence[int]) -> list[int]:
    """Keyframe frame numbers (frame 0 among them) -> ``keys_of``: each frame's latest keyframe."""
    ks = sorted(set(keys))
    if not ks or ks[0] != 0 or ks[-1] >= frames:
        raise ValueError(f"keyframes must include frame 0 and lie in 0..{frames - 1}, got {ks}")
    out, j = [], 0
    for t in range(frames):
        while j + 1 < len(ks) and ks[j + 1] <= t:
            j += 1
        out.append(ks[j])
    return out


def phase_schedule(frames: int, interval: int, phase: int) -> list[int]:
    """The fixed interval started at ``phase`` (0 <= phase < interval): keyframes 0 and
    phase, phase + interval, ... (phase 0 is :func:`fixed_schedule`). The count may differ
    from fixed's by one."""
    if not 0 <= phase < interval:
        raise ValueError(f"phase must be in 0..{interval - 1}, got {phase}")
    return schedule_of(frames, [0, *range(phase or interval, frames, interval)])


def default_jitter(interval: int) -> int:
    """How far :func:`jittered_schedules` moves each keyframe by default: half the interval, at least 1."""
    return max(1, interval // 2)


def jittered_schedules(frames: int, interval: int, *, samples: int, max_gap: int, seed: int = 0,
                       jitter: int | None = None) -> list[list[int]]:
    """Up to ``samples`` random schedules with exactly the fixed interval's keyframe count: every
    keyframe of :func:`fixed_schedule` but frame 0 moved by a uniform integer offset in
    [-jitter, jitter] (default :func:`default_jitter`), kept inside the clip. Draws where two
    keyframes meet or a gap exceeds ``max_gap`` are redrawn (at most 200 tries per sample, so
    fewer may come back). Deterministic for a seed."""
    j = default_jitter(interval) if jitter is None else jitter
    base = np.array(sorted(set(fixed_schedule(frames, interval)))[1:], dtype=np.int64)
    want = len(base) + 1
    rng = np.random.default_rng(seed)
    out: list[list[int]] = []
    for _ in range(samples * 200):
        if len(out) == samples:
            break
        moved = np.clip(base + rng.integers(-j, j + 1, size=len(base)), 1, frames - 1)
        keys = [0, *moved.tolist()]
        if len(set(keys)) != want:
            continue
        s = schedule_of(frames, keys)
        if all(t - s[t] <= max_gap for t in range(frames)):
            out.append(s)
    return out


@dataclass(frozen=True)
class Chance:
    """What chance gives at one fixed interval's rate (see the module doc)."""

    interval: int
    phases: list[tuple[int, float, int]]  # (phase, mIoU, keyframes) of the fixed interval at every phase
    jitter: int
    scores: np.ndarray  # mIoU of each jittered schedule

    def percentile(self, miou: float) -> float:
        """Share of the jittered schedules scoring below ``miou``, ties counted half, in %."""
        if not len(self.scores):
            return float("nan")
        below = float(np.mean(self.scores < miou - 1e-9))
        ties = float(np.mean(np.abs(self.scores - miou) <= 1e-9))
        return 100.0 * (below + ties / 2)


def chance(table: PairTable, interval: int, *, samples: int, seed: int = 0) -> Chance:
    """The fixed interval at every phase and ``samples`` jittered fixed schedules, scored."""
    phases = []
    for p in range(interval):
        s = phase_schedule(table.frames, interval, p)
        if all(t - s[t] <= table.max_gap for t in range(table.frames)):
            phases.append((p, score(table, s), count_keys(s)))
    j = default_jitter(interval)
    draws = jittered_schedules(table.frames, interval, samples=samples, max_gap=table.max_gap, seed=seed, jitter=j)
    return Chance(interval, phases, j, np.array([score(table, s) for s in draws]))


def rule_schedule(table: PairTable, deviations: dict[Pair, float], value: float, *, rule: AdaptiveRule | str) -> list[int]:
    """An adaptive rule (scheduling/rules.py) replayed on a deviation table (keyframe forced past max_gap)."""
    rule = as_rule(rule)
    keys_of, k, acc = [0], 0, 0.0
    for t in range(1, table.frames):
        forced = t - k > table.max_gap  # the table has no pair this far apart: forced keyframe
        choose, acc = decide_keyframe(rule, value, 0.0 if forced else deviations[(k, t)], acc, forced=forced)
        if choose:
            k = t
        keys_of.append(k)
    return keys_of


def matched_rule_schedule(table: PairTable, deviations: dict[Pair, float], n_keys: int, *,
                          rule: AdaptiveRule | str) -> list[int]:
    """The rule's schedule whose keyframe count is closest to ``n_keys`` (bisection on its number)."""
    rule = as_rule(rule)
    lo, hi = 0.0, rule.search_max
    best: list[int] | None = None
    for _ in range(40):
        mid = (lo + hi) / 2
        s = rule_schedule(table, deviations, mid, rule=rule)
        if best is None or abs(count_keys(s) - n_keys) < abs(count_keys(best) - n_keys):
            best = s
        if count_keys(s) > n_keys:
            lo = mid
        else:
            hi = mid
    assert best is not None
    return best


def same_count_range(table: PairTable, deviations: dict[Pair, float], n_keys: int, *, rule: AdaptiveRule | str,
                     steps: int = 2000) -> tuple[float, float] | None:
    """(lowest, highest) mIoU over every rule number on a fine grid that gives exactly ``n_keys``
    keyframes (None if none does). Several numbers give the same count but different keyframe
    placements, so a "same rate" comparison has this much play in it."""
    rule = as_rule(rule)
    top = rule.sweep_top(max(deviations.values(), default=1.0), table.max_gap)
    scores = [score(table, ks) for v in np.linspace(0.0, top, steps)
              if count_keys(ks := rule_schedule(table, deviations, float(v), rule=rule)) == n_keys]
    return (min(scores), max(scores)) if scores else None


def count_keys(keys_of: Sequence[int]) -> int:
    return len(set(keys_of))


def linear_cost(table: PairTable, around: Sequence[int]) -> dict[Pair, float]:
    """First-order cost of every pair: -d(sum_c IoU_c)/d(confusion) at the schedule ``around``,
    contracted with the pair's confusion. Additive over frames, so a DP can minimise it."""
    m0 = sum((table.confusion[(around[t], t)] for t in range(table.frames)), np.zeros_like(table.confusion[(0, 0)])).astype(np.float64)
    inter = np.diag(m0)
    union = m0.sum(0) + m0.sum(1) - inter
    ok = union > 0
    cost = {}
    for pair, m in table.confusion.items():
        mi = np.diag(m).astype(np.float64)
        mu = m.sum(0) + m.sum(1) - mi
        gain = np.where(ok, mi / np.where(ok, union, 1) - inter * mu / np.where(ok, union, 1) ** 2, 0.0)
        cost[pair] = -float(gain.sum())
    return cost


def deviation_cost(table: PairTable, deviations: dict[Pair, float]) -> dict[Pair, float]:
    """Every pair's deviation as a cost for :func:`best_schedule` (a keyframe's own frame: 0)."""
    return {pair: 0.0 if pair[0] == pair[1] else deviations[pair] for pair in table.confusion}


def best_schedule(table: PairTable, cost: dict[Pair, float], n_keys: int) -> list[int]:
    """Exactly ``n_keys`` keyframes (frame 0 is one), segments of at most max_gap + 1 frames,
    minimising the summed pair cost (dynamic programming over segment sums, O(n_keys x frames x
    max_gap) array steps: fast enough for videos of thousands of frames). Among equal costs the
    longer last segment is kept."""
    n, g = table.frames, table.max_gap
    inf = float("inf")
    # seg[s, L]: cost of the segment of L frames from keyframe s (inf past the clip)
    seg = np.full((n + 1, g + 2), inf)
    seg[:, 0] = 0.0
    for s in range(n):
        run = 0.0
        for length in range(1, min(g + 1, n - s) + 1):
            run += cost[(s, s + length - 1)]
            seg[s, length] = run
    # best[j][e]: least cost of frames 0..e-1 with j keyframes, the last segment ending at e-1
    best = np.full((n_keys + 1, n + 1), inf)
    best[0, 0] = 0.0
    arg = np.zeros((n_keys + 1, n + 1), dtype=np.int64)
    ends = np.arange(n + 1)
    for j in range(1, n_keys + 1):
        for length in range(g + 1, 0, -1):  # longest first: ties keep the longer last segment
            tail = ends[length:]
            c = best[j - 1, tail - length] + seg[tail - length, length]
            better = c < best[j, tail]
            best[j, tail[better]], arg[j, tail[better]] = c[better], tail[better] - length
    if not np.isfinite(best[n_keys, n]):
        raise ValueError(f"{n_keys} keyframes cannot cover {n} frames with gaps of at most {g}")
    starts: list[int] = []
    end = n
    for j in range(n_keys, 0, -1):
        end = int(arg[j, end])
        starts.append(end)
    return schedule_of(n, starts)
