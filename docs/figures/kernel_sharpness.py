"""Are the learned kernels too flat? Agreement with their weights sharpened after training.

``python docs/figures/kernel_sharpness.py [--propagation FILE] [--json OUT]``

For each held-out clip (first 150 frames, network input at height 360, keyframe every 5th frame,
agreement mIoU with the per-frame network, as ``eval agreement`` scores it), the learned methods
of a propagation file are run as trained (``t1``) and with every kernel raised to the power 2 and
renormalised (``t2``: the same taps, the mass pulled towards each kernel's largest weights), beside
``flow+fuse``. If sharpening helps, the training left the kernels flatter than the labels want:
they blur the keyframe's features instead of moving them.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
VIDEO = ROOT.parent / "shared" / "data" / "video"
CLIPS = {"city": "city_slow_626x360.mp4", "highway": "autobahn_960x540.mp4", "static": "static_street_640x352.mp4"}
FRAMES, INTERVAL, POWERS = 150, 5, (1, 2)


def score_clip(path: Path, propagation: str | None) -> dict[str, float]:
    from lowlatseg.evaluation.commands.loading import load_guided, load_propagation_of
    from lowlatseg.evaluation.commands.video import unlabelled_frames
    from lowlatseg.evaluation.video import Row, run_protocol
    from lowlatseg.io.video import VideoReader
    from lowlatseg.propagation.methods import FlowWarp
    from lowlatseg.runtime import network_size, parse_size

    p = load_propagation_of(None, propagation)
    guided = load_guided(propagation, p.model)
    rows = [Row("flow+fuse", FlowWarp(p.config.flow_preset), True)]
    for name, method in (("adaptive", p.adaptive), ("flow-guided", guided)):
        if method is None:
            continue
        for power in POWERS:
            m = copy.deepcopy(method)
            m.predictor.sharpness = float(power)  # softmax(power * logits): the kernel to that power, renormalised
            rows.append(Row(f"{name} t{power}", m, True))
    reader = VideoReader(str(path))
    hw = network_size((reader.info.height, reader.info.width), parse_size("360"))
    try:
        res = run_protocol(p.model, rows, unlabelled_frames(reader, hw, FRAMES), interval=INTERVAL,
                           num_classes=p.model.config.num_classes)
    finally:
        reader.close()
    return {r["method"]: round(r["miou"], 2) for r in res.rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--propagation", help="propagation weights (default: bundled)")
    ap.add_argument("--json", help="write the result here")
    a = ap.parse_args()
    if not VIDEO.is_dir():
        print(f"no videos at {VIDEO}; this script needs the project's data folder", file=sys.stderr)
        return 2
    torch.set_num_threads(2)
    result = {"interval": INTERVAL, "frames": FRAMES, "height": 360, "propagation": a.propagation or "bundled",
              "score": "agreement mIoU with the per-frame network; tN: kernels raised to the power N, renormalised",
              "clips": {name: {"video": clip, **score_clip(VIDEO / clip, a.propagation)} for name, clip in CLIPS.items()}}
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["clips"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
