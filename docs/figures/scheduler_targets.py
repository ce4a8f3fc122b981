"""What the deviation predictor's target buys: the pixel share (the paper's) against the
class-weighted deviation (scheduling/targets.py), as learned and as the true value.

``python docs/figures/scheduler_targets.py --scheduler FILE [--out FILE]`` writes
``docs/results/scheduler_targets.json``: for ``city_elevated`` (the clip scheduler files are
chosen on) and the three held-out clips, whole, the gain over fixed of four signals on the
accumulated rule at exactly fixed's keyframe count (1/5, 1/8):

* ``learned, pixels``: the bundled predictor;
* ``learned, <name>``: the predictor of ``--scheduler`` (trained with ``--target class-weighted``);
* ``oracle, pixels``: the true share of feature-grid pixels whose label the propagation changes;
* ``oracle, class-weighted``: the true class-weighted deviation, from each pair's confusion at the
  network input size, weighted by the class frequencies stored in ``--scheduler``.

In agreement mIoU over all 11 classes, as ``eval scheduling`` scores it, and over the classes
that cover at least 0.1 % of the clip's per-frame labels; the held-out clips also pooled
(confusions summed). Pair tables as in ``docs/figures/warp_signals.py`` (the protocol of ``eval
scheduling --video``: flow with fusion, height 360, max gap 12). About 20 min on 2 threads.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rare_classes import MIN_SHARE, clip_confusions, gains, miou  # noqa: E402
from warp_signals import ROOT, VIDEO, clip_table  # noqa: E402  (one copy of the pair-table protocol)

CLIPS = ("city_elevated_640x360.mp4", "city_slow_626x360.mp4", "autobahn_960x540.mp4", "static_street_640x352.mp4")


def weighted_oracle(table: object, weights: np.ndarray) -> dict:
    """Each pair's class-weighted deviation from its confusion (rows: per-frame labels)."""
    out = {}
    for pair in table.true:  # type: ignore[attr-defined]
        c = table.confusion[pair]  # type: ignore[attr-defined]
        out[pair] = min(1.0, float((c * weights).sum() / max(c.sum(), 1)))
    return out


def main() -> None:
    from lowlatseg.checkpoint import load_model
    from lowlatseg.scheduling.weights import load_scheduler

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scheduler", required=True, help="a scheduler file trained with --target class-weighted")
    ap.add_argument("--name", default="class-weighted", help="its name in the table")
    ap.add_argument("--clips", nargs="+", default=list(CLIPS), help="clips of ../shared/data/video; the first is not pooled")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "scheduler_targets.json"))
    a = ap.parse_args()
    torch.set_num_threads(2)
    new, defaults = load_scheduler(a.scheduler, load_model())
    weights = defaults.target_weights()
    if weights is None:
        raise SystemExit(f"{a.scheduler} learned the pixel share; pass a file trained with --target class-weighted")
    signals = {"learned, pixels": "learned predictor", f"learned, {a.name}": a.name, "oracle, pixels": "true deviation",
               "oracle, class-weighted": "oracle, class-weighted"}
    totals: dict[tuple[str, int, str], np.ndarray] = {}
    result: dict = {"scheduler": a.scheduler, "min_share": MIN_SHARE, "clips": {}, "held_out_pooled": {}}
    for clip in a.clips:
        table, devs = clip_table(VIDEO / clip, 10 ** 6, extra={a.name: new})
        devs["oracle, class-weighted"] = weighted_oracle(table, weights.numpy())
        row: dict = {"frames": table.frames}
        for interval in (5, 8):
            conf = clip_confusions(table, devs, signals, interval)
            row[f"1/{interval}"] = {"fixed": round(miou(conf["fixed"], np.arange(len(conf["fixed"]))), 2), **gains(conf)}
            if clip != a.clips[0]:
                for name, c in conf.items():
                    totals[(clip, interval, name)] = c
        result["clips"][clip] = row
        print(clip, json.dumps(row), flush=True)
    for interval in (5, 8):
        if len(a.clips) < 2:
            break
        pooled = {name: sum(totals[(c, interval, name)] for c in a.clips[1:]) for name in ("fixed", *signals)}
        result["held_out_pooled"][f"1/{interval}"] = {"fixed": round(miou(pooled["fixed"], np.arange(len(pooled["fixed"]))), 2),
                                                      **gains(pooled)}
    print(json.dumps(result["held_out_pooled"], indent=1))
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
