"""``eval video``'s scheduled rows: adaptive scheduling (both rules) and low-latency, run online
at the fixed protocol's keyframe rate."""

from __future__ import annotations

from typing import Any, cast

import torch
from tqdm import tqdm

from lowlatseg.nn.splitnet import SplitSegNet
from lowlatseg.scheduling.rules import as_rule, other_rules


def scheduled_rows(model: SplitSegNet, ds: Any, n: int, interval: int, *, propagation: str | None,
                   scheduler: str | None, delay_frames: int, progress: bool) -> list[dict[str, Any]]:
    """``adaptive-scheduled`` and ``low-latency`` rows at the fixed protocol's keyframe rate."""
    from lowlatseg.data.transforms import to_tensor
    from lowlatseg.evaluation.video import run_online
    from lowlatseg.runtime.build import build_runtime
    from lowlatseg.runtime.config import Inline, RuntimeConfig
    from lowlatseg.scheduling.calibrate import fixed_interval_rate, threshold_for_rate
    from lowlatseg.scheduling.weights import load_scheduler

    images = [ds[i][0] for i in range(n)]
    labels = [ds[i][1] for i in range(n)]
    predictor, defaults = load_scheduler(scheduler, model)
    shipped = as_rule(defaults.rule)
    other = other_rules(shipped)[0]
    rate = fixed_interval_rate(n, interval)
    with torch.inference_mode():
        f_lows = [model.low(to_tensor(im).unsqueeze(0)) for im in images]
    rows = []
    # the shipped rule, then the other rule for comparison; low-latency with the shipped rule
    for name, mode, rule in (("adaptive-scheduled", "adaptive", shipped),
                             (f"adaptive-scheduled-{other.name}", "adaptive", other),
                             ("low-latency", "low-latency", shipped)):
        # match the rate of the mode as it really runs (low-latency: keyframes take effect later)
        value = threshold_for_rate(predictor, f_lows, rate, rule=rule,
                                   delay_frames=delay_frames if mode == "low-latency" else 0)
        rt = build_runtime(model, RuntimeConfig(mode=mode, propagation=propagation, scheduler=scheduler,
                                                size=images[0].shape[:2], executor=Inline(delay_frames),
                                                spare_keyframes=False,  # rows at the fixed protocol's rate
                                                **cast(dict[str, Any], {rule.number: value})))
        with rt, torch.inference_mode():
            row = run_online(rt, images, labels, num_classes=ds.labels.num_classes, name=name, interval=interval)
        row["rule"] = rule.name
        row[rule.number] = round(value, 5)
        if mode == "low-latency":
            row["delay_frames"] = delay_frames
        rows.append(row)
        if progress:
            tqdm.write(f"{name}: keyframe fraction {row['keyframe_fraction']:.3f} (fixed: {rate:.3f}), mIoU {row['miou']:.2f}")
    return rows
