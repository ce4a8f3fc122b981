"""What DIS flow at a lower resolution costs the flow baseline, and what it saves.

``python docs/figures/flow_resolution.py`` writes ``docs/results/flow_resolution.json``.

Flow warping moves a keyframe's ``f_high`` on the stride-8 feature grid (45 x 60 cells at
360x480), yet DIS runs on the full frame, and its time grows with the pixels. This script runs
``flow+fuse`` (the ``flow`` runtime method) with DIS on the frame shrunk 1, 2 and 4 times per side
(:class:`lowlatseg.propagation.flow.DISFlow`, ``downscale``), with the ``fast`` and ``ultrafast``
presets, beside the per-frame network, through the protocol of ``eval agreement`` (keyframe every
5th frame, network input at height 360, first 150 frames of each clip, agreement mIoU with the
per-frame network, the same timing of a non-key frame). Three training clips decide; the three
held-out clips are reported beside them, and the labelled CamVid val clip (360x480, mIoU against
its labels, as ``eval video --split val --interval 5``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]
VIDEO = ROOT.parent / "shared" / "data" / "video"
TRAINING = {"city (training)": "city_elevated_640x360.mp4", "highway (training)": "highway_day_960x540.mp4",
            "static (training)": "static_pedestrians_854x480.mp4"}
HELD_OUT = {"city": "city_slow_626x360.mp4", "highway": "autobahn_960x540.mp4", "static": "static_street_640x352.mp4"}
SETTINGS = [("fast", 1), ("fast", 2), ("fast", 4), ("ultrafast", 1), ("ultrafast", 2)]
FRAMES, INTERVAL = 150, 5


def score_clip(model: Any, path: Path | None) -> dict[str, dict[str, float]]:
    """One clip's rows for the bundled ``model``; ``path`` None: the labelled CamVid val clip."""
    from lowlatseg.evaluation.video import Row
    from lowlatseg.propagation.methods import FlowWarp

    return score_rows(model, [Row(f"{p} /{s}", FlowWarp(p, s), True) for p, s in SETTINGS], path)


def score_rows(model: Any, rows: list[Any], path: Path | None) -> dict[str, dict[str, float]]:
    """``rows`` (``evaluation.video.Row``) beside the per-frame network on one clip (the first
    ``FRAMES`` frames at height 360), or on the labelled CamVid val clip (``path`` None): each
    row's mIoU, ms per frame and its share of a per-frame one in the same run."""
    from lowlatseg.data.camvid import camvid
    from lowlatseg.data.transforms import to_tensor
    from lowlatseg.evaluation.commands.video import unlabelled_frames
    from lowlatseg.evaluation.video import Row, run_protocol
    from lowlatseg.io.video import VideoReader
    from lowlatseg.runtime import network_size

    rows = [Row("per-frame", None, True), *rows]
    if path is None:
        ds = camvid(str(ROOT.parent / "shared" / "data" / "camvid"), "val")
        frames = ((to_tensor(ds[i][0]).unsqueeze(0), ds[i][1]) for i in range(len(ds)))
        res = run_protocol(model, rows, frames, interval=INTERVAL, num_classes=ds.labels.num_classes)
    else:
        with VideoReader(str(path)) as reader:
            hw = network_size((reader.info.height, reader.info.width), 360)
            res = run_protocol(model, rows, unlabelled_frames(reader, hw, FRAMES), interval=INTERVAL,
                               num_classes=model.config.num_classes)
    per_frame_ms = next(r["ms_per_frame"] for r in res.rows if r["method"] == "per-frame")
    out = {}
    for r in res.rows:
        if r["method"] == "per-frame":
            continue
        out[r["method"]] = {"miou": round(r["miou"], 2), "ms_per_frame": r["ms_per_frame"],
                            "cost_vs_per_frame": round(r["ms_per_frame"] / per_frame_ms, 3)}
    out["per-frame"] = {"ms_per_frame": per_frame_ms}
    return out


def main() -> int:
    from lowlatseg import load_model

    torch.set_num_threads(2)
    model = load_model()
    result = {"frames": FRAMES, "interval": INTERVAL, "size": 360, "threads": 2, "clips": {}}
    clips: dict[str, Path | None] = {name: VIDEO / clip for name, clip in {**TRAINING, **HELD_OUT}.items()}
    for name, path in {**clips, "CamVid val clip (labels)": None}.items():
        result["clips"][name] = score_clip(model, path)
        print(name, json.dumps(result["clips"][name]), flush=True)
    out = ROOT / "docs" / "results" / "flow_resolution.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
