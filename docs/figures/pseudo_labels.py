"""What a teacher's pseudo-labels look like: frames of a `train pseudo-labels` folder beside their labels.

``python docs/figures/pseudo_labels.py DIR --out docs/pseudo_labels.png [--clips N] [--height H] [--columns C]``
takes the middle frame of each clip in ``DIR/pseudo.txt`` (up to ``--clips``), and draws the
frame and its label map in the CamVid palette, void (the teacher unsure) in black.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from lowlatseg.classes import CAMVID
from lowlatseg.overlay import colorize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a folder written by lowlatseg train pseudo-labels")
    ap.add_argument("--out", type=Path, required=True, help="the PNG to write")
    ap.add_argument("--clips", type=int, default=6, help="how many clips (rows)")
    ap.add_argument("--height", type=int, default=180, help="row height in pixels")
    ap.add_argument("--columns", type=int, default=2, help="clips side by side")
    a = ap.parse_args()
    by_clip: dict[str, list[tuple[str, str]]] = {}
    for line in (a.folder / "pseudo.txt").read_text().splitlines():
        image, label = line.split()
        by_clip.setdefault(Path(image).stem.split("_")[0], []).append((image, label))
    rows = []
    void = CAMVID.num_classes
    for clip in sorted(by_clip)[: a.clips]:
        image, label = by_clip[clip][len(by_clip[clip]) // 2]
        frame = cv2.imread(str(a.folder / image))
        lab = cv2.imread(str(a.folder / label), cv2.IMREAD_UNCHANGED)
        colour = colorize(np.where(lab == void, 0, lab).astype(np.uint8), CAMVID)[..., ::-1].copy()
        colour[lab == void] = 0
        w = round(frame.shape[1] * a.height / frame.shape[0])
        row = np.hstack([cv2.resize(frame, (w, a.height), interpolation=cv2.INTER_AREA),
                         cv2.resize(colour, (w, a.height), interpolation=cv2.INTER_NEAREST)])
        cv2.putText(row, clip, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1] + 8), (0, 0))) for r in rows]
    rows += [np.zeros_like(rows[0])] * (-len(rows) % a.columns)
    grid = [np.hstack(rows[i : i + a.columns]) for i in range(0, len(rows), a.columns)]
    cv2.imwrite(str(a.out), np.vstack(grid))
    print(f"wrote {a.out}: {len(rows)} clips")


if __name__ == "__main__":
    main()
