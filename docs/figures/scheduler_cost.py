"""What the deviation predictors cost on every frame of the adaptive modes: the learned one
against ``warp-error``, interleaved calls on the ``low`` of two real frames at 360x480.

``python docs/figures/scheduler_cost.py --warp FILE [--calls N] [--out FILE]`` prints and writes
JSON: medians in ms over ``N`` calls of each (default 200), 2 threads, with the bundled model and
its bundled (learned) scheduler against the warp-error scheduler file ``FILE``. Compare them with
the whole network's time from ``lowlatseg bench split`` on the same host.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT.parent / "shared" / "data" / "video" / "city_slow_626x360.mp4"


def main() -> None:
    from lowlatseg.checkpoint import load_model
    from lowlatseg.io.video import VideoReader
    from lowlatseg.nn.inference import for_inference
    from lowlatseg.runtime import prepare
    from lowlatseg.scheduling.weights import load_scheduler

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warp", required=True, help="a warp-error scheduler file for the bundled model")
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(2)
    base = load_model()
    model = for_inference(base)
    learned, _ = load_scheduler(None, base)
    warp, _ = load_scheduler(a.warp, base)
    learned = for_inference(learned)
    with VideoReader(CLIP) as r:
        frames = [prepare(f, (360, 480)) for _, f in zip(range(6), r)]
    times: dict[str, list[float]] = {"learned": [], "warp-error": []}
    with torch.inference_mode():
        key, cur = model.low(frames[0]), model.low(frames[5])
        calls = {"learned": lambda: learned(key, cur), "warp-error": lambda: warp(key, cur)}
        for fn in calls.values():
            fn()
        for _ in range(a.calls):
            for name, fn in calls.items():
                t0 = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t0) * 1000)
    med = {k: round(statistics.median(v), 3) for k, v in times.items()}
    result = {"size": "360x480", "threads": 2, "calls": a.calls, "median_ms": med}
    print(json.dumps(result, indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
