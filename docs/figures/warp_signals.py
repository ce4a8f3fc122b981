"""Flow-derived deviation signals against the learned predictor, on training clips: how well each
tracks the true deviation, and what keyframe scheduling on it gains over a fixed interval.

``python docs/figures/warp_signals.py [--frames 450] [--out FILE]`` writes
``docs/results/warp_signals.json``. For every (keyframe k, frame t) pair with t - k <= 12 of the
first ``--frames`` frames of five training clips (network input at height 360, flow propagation
with fusion, the bundled model and scheduler), it records the confusion of t's propagated labels
against the per-frame network's (agreement), the learned prediction, the true deviation, and
signals from DIS flow (``ultrafast``) between the grey frames at half size: the share of pixels
the warped keyframe leaves more than 8 / 16 / 32 grey levels off, their mean absolute difference,
and the mean flow magnitude. Each signal then drives the accumulated and instant rules at exactly
fixed's keyframe count (1/5 and 1/8), per clip and pooled (confusions summed over the clips).
"""

from __future__ import annotations

import argparse
import json
from collections import deque
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
VIDEO = ROOT.parent / "shared" / "data" / "video"
CLIPS = ("city_elevated_640x360.mp4", "desert_road_640x360.mp4", "forest_road_640x360.mp4", "rain_highway_640x360.mp4",
         "static_pedestrians_854x480.mp4")
MAX_GAP = 12
LEVELS = (8, 16, 32)


def signals(key_grey: np.ndarray, cur_grey: np.ndarray, dis: object) -> dict[str, float]:
    """The flow signals of one pair (half-size uint8 grey frames)."""
    flow = dis.calc(cur_grey, key_grey, None)  # type: ignore[attr-defined]
    h, w = cur_grey.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    warped = cv2.remap(key_grey, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    err = np.abs(cur_grey.astype(np.int16) - warped.astype(np.int16))
    out = {f"off>{lv}": float((err > lv).mean()) for lv in LEVELS}
    out["mean abs"] = float(err.mean() / 255)
    out["flow magnitude"] = float(np.sqrt((flow ** 2).sum(-1)).mean() / w)
    return out


def clip_table(path: Path, frames: int, extra: dict[str, object] | None = None) -> tuple[object, dict[str, dict]]:
    """The pair table of a clip's first ``frames`` frames and each signal's value per pair: the
    bundled predictor's, the true deviation, the flow signals, and one per predictor in ``extra``
    (name -> predictor for the bundled network, run on the same pairs)."""
    from lowlatseg.checkpoint import load_model
    from lowlatseg.evaluation.schedules import PairTable, pair_result
    from lowlatseg.io.video import VideoReader
    from lowlatseg.nn.inference import for_inference
    from lowlatseg.nn.splitnet import to_labels
    from lowlatseg.propagation.flow import to_grey
    from lowlatseg.propagation.methods import Current
    from lowlatseg.propagation.produce import make_key
    from lowlatseg.propagation.weights import runtime_propagator
    from lowlatseg.runtime import network_size, parse_size, prepare
    from lowlatseg.scheduling.weights import load_scheduler

    base = load_model()
    method = runtime_propagator(None, base, "flow")
    predictor, _ = load_scheduler(None, base)
    model, predictor = for_inference(base), for_inference(predictor)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)  # type: ignore[attr-defined]
    extra = {name: for_inference(p) for name, p in (extra or {}).items()}
    conf, pred, true, sig = {}, {}, {}, {}
    more: dict[str, dict] = {name: {} for name in extra}
    window: deque = deque(maxlen=MAX_GAP + 1)
    n = 0
    with torch.inference_mode(), VideoReader(path) as r:
        hw = network_size((r.info.height, r.info.width), parse_size("360"))
        for t, f in enumerate(r):
            if t >= frames:
                break
            image = prepare(f, hw)
            f_low = model.low(image)
            grey = to_grey(image)
            half = cv2.resize(grey, (grey.shape[1] // 2, grey.shape[0] // 2), interpolation=cv2.INTER_AREA)
            window.append((make_key(model, t, image, f_low), half))
            grid = model.head(window[-1][0].f_high, f_low)
            teacher = to_labels(grid)
            target = to_labels(torch.nn.functional.interpolate(grid, size=hw, mode="bilinear", align_corners=False))[0]
            cur = Current(index=t, image=image, f_low=f_low)
            for key, key_half in window:
                k = key.index
                conf[(k, t)], p, d = pair_result(model, method, predictor, key, cur, teacher, target, num_classes=11)
                if p is not None and d is not None:
                    pred[(k, t)], true[(k, t)] = p, d
                    sig[(k, t)] = signals(key_half, half, dis)
                    for name, p in extra.items():
                        more[name][(k, t)] = float(p(key.f_low, f_low)[0])
            n += 1
    devs = {"learned predictor": pred, "true deviation": true, **more}
    for name in sig[next(iter(sig))]:
        devs[name] = {pair: v[name] for pair, v in sig.items()}
    return PairTable(n, MAX_GAP, conf, pred, true), devs


def main() -> None:
    from lowlatseg.evaluation.long_video import confusion_miou
    from lowlatseg.evaluation.schedules import count_keys, fixed_schedule, matched_rule_schedule, score

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=450)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "warp_signals.json"))
    a = ap.parse_args()
    torch.set_num_threads(2)
    result: dict = {"frames": a.frames, "max_gap": MAX_GAP, "size": 360, "clips": {}, "pooled": {}}
    pooled: dict = {}
    for clip in CLIPS:
        table, devs = clip_table(VIDEO / clip, a.frames)
        truth = devs["true deviation"]
        pairs = list(truth)
        tv = np.array([truth[p] for p in pairs])
        row: dict = {"correlation_with_true": {k: round(float(np.corrcoef(tv, [d[p] for p in pairs])[0, 1]), 3)
                                               for k, d in devs.items() if k != "true deviation"}}
        for interval in (5, 8):
            fixed = fixed_schedule(table.frames, interval)
            want = count_keys(fixed)
            base = score(table, fixed)
            gains = {"fixed": round(base, 2)}
            schedules = {"fixed": fixed}
            for name, d in devs.items():
                for rule in ("accumulated", "instant"):
                    s = matched_rule_schedule(table, d, want, rule=rule)
                    schedules[f"{name}, {rule}"] = s
                    gains[f"{name}, {rule}"] = round(score(table, s) - base, 2)
            row[f"1/{interval}"] = gains
            for name, s in schedules.items():
                pooled.setdefault((interval, name), []).append(sum(table.confusion[(s[t], t)] for t in range(table.frames)))
        result["clips"][clip] = row
        print(clip, json.dumps(row), flush=True)
    for interval in (5, 8):
        fixed = confusion_miou(np.sum(pooled[(interval, "fixed")], axis=0))
        result["pooled"][f"1/{interval}"] = {"fixed": round(fixed, 2), **{
            name: round(confusion_miou(np.sum(c, axis=0)) - fixed, 2) for (i, name), c in pooled.items()
            if i == interval and name != "fixed"}}
    print(json.dumps(result["pooled"], indent=1))
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
