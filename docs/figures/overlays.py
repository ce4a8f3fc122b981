"""The README's picture: frames of held-out real clips with the default model's labels blended in.

    python docs/figures/overlays.py --out docs/figures/overlays.png

Frames are taken at fixed positions of clips no learned part was trained on (city, highway,
static camera), segmented per frame at height 360 by the bundled default model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from lowlatseg import RuntimeConfig, VideoReader, build_runtime, load_model
from lowlatseg.classes import CAMVID
from lowlatseg.overlay import colorize, draw_legend

CLIPS = (("city_slow_626x360.mp4", 300), ("autobahn_960x540.mp4", 120), ("static_street_640x352.mp4", 400),
         ("city_slow_626x360.mp4", 60))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", default="../shared/data/video")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--out", default="docs/figures/overlays.png")
    a = ap.parse_args()
    model = load_model(a.weights)
    tiles = []
    for name, at in CLIPS:
        with VideoReader(Path(a.videos) / name) as r:
            frame = next(f for i, f in enumerate(r) if i == at)
        with build_runtime(model, RuntimeConfig(mode="per-frame", size=360)) as rt:
            labels = rt.step(frame).labels
        labels = cv2.resize(labels, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_NEAREST)
        mixed = cv2.addWeighted(frame, 0.55, colorize(labels, CAMVID), 0.45, 0)
        tile = cv2.resize(mixed, (480, 270), interpolation=cv2.INTER_AREA)
        tiles.append(tile)
    grid = np.concatenate([np.concatenate(tiles[:2], 1), np.concatenate(tiles[2:4], 1)], 0)
    draw_legend(grid, CAMVID)
    cv2.imwrite(a.out, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
