"""Scene cuts: a frame that shows another scene than the frame before it gets a keyframe at once.

Propagation from a keyframe of another scene is meaningless, and a deviation predictor trained on
continuous video need not see that. So the runtime compares every frame with the one before it
(not with the keyframe: a car crossing a static camera or a bridge overhead changes a frame a lot
over 20 frames and is no cut) by a signature of a 64 x 36 thumbnail:

* colour: 1 - Bhattacharyya coefficient of the 8 x 8 x 8-bin RGB histograms (0 = same colours);
* layout: 1 - correlation of the standardised 32 x 18 grey thumbnails (0 = same picture).

A cut is both above their thresholds. Measured on the 15 clips of ``../shared/data/video``
(2026-12-01, consecutive frames): the three cuts (``freeway_cuts_854x480.mp4`` frames 363 and 434,
``city_elevated_640x360.mp4`` frame 820) have colour 0.118-0.176 and layout 0.33-0.85; every other
pair of consecutive frames has colour at most 0.068 (a white car entering a top-down parking
camera) and, where its colour is above 0.03, layout at most 0.30. Hence 0.09 and 0.2.

Conventions: a signature is computed from the network input (1 x 3 x H x W float RGB in [0, 1]);
it costs about 0.2 ms at 360 x 480.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

COLOUR_THRESHOLD = 0.09
LAYOUT_THRESHOLD = 0.2


@dataclass(frozen=True)
class Signature:
    hist: np.ndarray  # 512 RGB histogram bins, summing to 1
    grey: np.ndarray  # 18 x 32 grey thumbnail, zero mean, unit variance


def signature(image: torch.Tensor) -> Signature:
    """1 x 3 x H x W float RGB [0, 1] -> its :class:`Signature`."""
    small = F.adaptive_avg_pool2d(image[:1].float(), (36, 64))[0]  # 3 x 36 x 64
    rgb = (small.permute(1, 2, 0).clamp(0, 1) * 255).to(torch.uint8).numpy()
    hist = cv2.calcHist([rgb], [0, 1, 2], None, [8, 8, 8], [0, 256] * 3).ravel()
    grey = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)
    return Signature(hist=hist / max(float(hist.sum()), 1.0), grey=(grey - grey.mean()) / (grey.std() + 1e-3))


def distances(a: Signature, b: Signature) -> tuple[float, float]:
    """(colour, layout) distances in [0, 1] and [0, 2]; 0 for identical frames."""
    colour = 1.0 - float(np.sum(np.sqrt(a.hist * b.hist)))
    layout = 1.0 - float(np.mean(a.grey * b.grey))
    return max(colour, 0.0), layout


def is_cut(previous: Signature, current: Signature, *, colour: float = COLOUR_THRESHOLD,
           layout: float = LAYOUT_THRESHOLD) -> bool:
    """Whether ``current`` starts another scene than ``previous`` (the frame just before it)."""
    c, g = distances(previous, current)
    return c > colour and g > layout
