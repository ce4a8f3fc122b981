"""How much of a scheduling verdict rests on classes that are nearly absent from a clip.

``python docs/figures/rare_classes.py [--out FILE]`` writes ``docs/results/rare_classes.json``:
for ``city_elevated`` (the clip scheduler files are chosen on) and the three held-out clips, whole,
the gain over fixed of the learned predictor, the warp-error signal (the share of pixels off by
more than 16 grey levels, as ``WarpErrorPredictor`` measures it) and the true deviation, each on
the accumulated rule at exactly fixed's keyframe count (1/5, 1/8); in agreement mIoU over all 11
classes, as ``eval scheduling`` scores it, and over the classes that cover at least 0.1 % of the
clip's per-frame labels. The held-out clips are also pooled (confusions summed). Pair tables as in
``docs/figures/warp_signals.py`` (the same protocol as ``eval scheduling --video``, max gap 12).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from warp_signals import ROOT, VIDEO, clip_table  # noqa: E402  (one copy of the pair-table protocol)

CLIPS = ("city_elevated_640x360.mp4", "city_slow_626x360.mp4", "autobahn_960x540.mp4", "static_street_640x352.mp4")
SIGNALS = {"learned": "learned predictor", "warp-error": "off>16", "oracle": "true deviation"}
MIN_SHARE = 0.001


def miou(conf: np.ndarray, classes: np.ndarray) -> float:
    tp = np.diag(conf).astype(np.float64)
    denom = conf.sum(0) + conf.sum(1) - tp
    iou = np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)[classes]
    return float(np.nanmean(iou) * 100)


def clip_confusions(table: object, devs: dict[str, dict], signals: dict[str, str], interval: int) -> dict[str, np.ndarray]:
    """name -> the summed confusion of the clip under each signal's schedule (accumulated rule at
    exactly fixed's keyframe count; ``signals``: name -> key of ``devs``), and ``fixed``'s."""
    from lowlatseg.evaluation.schedules import count_keys, fixed_schedule, matched_rule_schedule

    n = table.frames  # type: ignore[attr-defined]
    fixed = fixed_schedule(n, interval)
    schedules = {"fixed": fixed, **{name: matched_rule_schedule(table, devs[key], count_keys(fixed), rule="accumulated")
                                    for name, key in signals.items()}}
    return {name: sum(table.confusion[(s[t], t)] for t in range(n)) for name, s in schedules.items()}  # type: ignore[attr-defined]


def gains(conf: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Each schedule's mIoU minus fixed's, over all classes and over the classes with at least
    ``MIN_SHARE`` of fixed's per-frame labels (``conf``: name -> C x C, ``fixed`` among them)."""
    share = conf["fixed"].sum(1) / conf["fixed"].sum()
    common, every = np.flatnonzero(share >= MIN_SHARE), np.arange(len(share))
    return {name: {"all classes": round(miou(c, every) - miou(conf["fixed"], every), 2),
                   "common classes": round(miou(c, common) - miou(conf["fixed"], common), 2)}
            for name, c in conf.items() if name != "fixed"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "rare_classes.json"))
    a = ap.parse_args()
    torch.set_num_threads(2)
    totals: dict[tuple[str, int, str], np.ndarray] = {}
    result: dict = {"min_share": MIN_SHARE, "clips": {}, "held_out_pooled": {}}
    for clip in CLIPS:
        table, devs = clip_table(VIDEO / clip, 10 ** 6)
        row: dict = {"frames": table.frames}
        for interval in (5, 8):
            conf = clip_confusions(table, devs, SIGNALS, interval)
            share = conf["fixed"].sum(1) / conf["fixed"].sum()
            row[f"1/{interval}"] = {
                "rare_classes": {int(c): int(conf["fixed"].sum(1)[c]) for c in np.flatnonzero(share < MIN_SHARE)},
                **gains(conf)}
            if clip != CLIPS[0]:
                for name, c in conf.items():
                    totals[(clip, interval, name)] = c
        result["clips"][clip] = row
        print(clip, json.dumps(row), flush=True)
    for interval in (5, 8):
        pooled = {name: sum(totals[(c, interval, name)] for c in CLIPS[1:]) for name in ("fixed", *SIGNALS)}
        result["held_out_pooled"][f"1/{interval}"] = gains(pooled)
    print(json.dumps(result["held_out_pooled"], indent=1))
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
