"""What a propagated frame costs, as a share of a per-frame one, with the runtime's propagation
methods; and what the head's one-layout fusion saves.

``python docs/figures/propagated_cost.py [--weights W] [--out FILE]`` writes
``docs/results/propagated_cost.json``.

1. **The head's layouts.** The inference copy runs channels-last; features warped by flow come
   back NCHW (``grid_sample``'s output). The head now brings them to channels-last before it
   fuses them with ``f_low`` (:class:`lowlatseg.nn.splitnet.Head`). Timed here at 360x480, 2
   threads, in interleaved calls: the head as it is, given NCHW and channels-last ``f_high``, and
   the fusion as it was (the mixed concatenation).
2. **A propagated frame's share.** The protocol of ``eval agreement`` (keyframe every 5th frame,
   network input at height 360, the first 150 frames of the three held-out clips, agreement mIoU
   with the per-frame network, a non-key frame's time over a per-frame one in the same run) for
   the paper's adaptive kernels (the bundled propagation file), and DIS flow with fusion at the
   ``fast`` and ``ultrafast`` presets; and on the labelled CamVid val clip.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flow_resolution import FRAMES, INTERVAL, score_rows  # noqa: E402  (the same protocol, one copy)

ROOT = Path(__file__).resolve().parents[2]
VIDEO = ROOT.parent / "shared" / "data" / "video"
HELD_OUT = {"city": "city_slow_626x360.mp4", "highway": "autobahn_960x540.mp4", "static": "static_street_640x352.mp4"}
CALLS = 200


def head_layouts(model: Any) -> dict[str, float]:
    """Median ms of the inference copy's head in three ways, interleaved (360x480, 2 threads)."""
    from lowlatseg.nn.inference import for_inference

    fast = for_inference(model)
    cl = torch.channels_last
    x = torch.rand(1, 3, 360, 480).contiguous(memory_format=cl)
    times: dict[str, list[float]] = {"channels-last f_high": [], "NCHW f_high (now)": [], "NCHW f_high, mixed fusion (before)": []}
    with torch.inference_mode():
        f_low = fast.low(x)
        f_cl = fast.high(f_low)
        f_nchw = f_cl.contiguous()
        head = fast.head

        def mixed() -> torch.Tensor:
            return head.classify(head.fuse(torch.cat([f_nchw, head.adapt(f_low)], dim=1)))

        calls = {"channels-last f_high": lambda: head(f_cl, f_low), "NCHW f_high (now)": lambda: head(f_nchw, f_low),
                 "NCHW f_high, mixed fusion (before)": mixed}
        for _ in range(5):
            for call in calls.values():
                call()
        for _ in range(CALLS):
            for name, call in calls.items():
                t = time.perf_counter()
                call()
                times[name].append((time.perf_counter() - t) * 1000)
    return {name: round(statistics.median(ts), 3) for name, ts in times.items()}


def score_clip(model: Any, path: Path | None) -> dict[str, dict[str, float]]:
    """One clip's rows (``flow_resolution.score_rows``); ``path`` None: the labelled CamVid val clip."""
    from lowlatseg.evaluation.video import Row
    from lowlatseg.propagation.methods import FlowWarp
    from lowlatseg.propagation.weights import load_methods

    learned = load_methods(None, model)
    rows = [Row("adaptive", learned.adaptive, True), Row("flow+fuse fast", FlowWarp("fast"), True),
            Row("flow+fuse ultrafast", FlowWarp("ultrafast"), True)]
    return score_rows(model, rows, path)


def main() -> int:
    from lowlatseg import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="base weights (default: the bundled model)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "propagated_cost.json"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.weights)
    result: dict[str, Any] = {"frames": FRAMES, "interval": INTERVAL, "size": 360, "threads": 2,
                              "head_ms_360x480": head_layouts(model), "clips": {}}
    print("head", json.dumps(result["head_ms_360x480"]), flush=True)
    clips: dict[str, Path | None] = {name: VIDEO / clip for name, clip in HELD_OUT.items()}
    for name, path in {**clips, "CamVid val clip (labels)": None}.items():
        result["clips"][name] = score_clip(model, path)
        print(name, json.dumps(result["clips"][name]), flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
