"""What the page shows of one segmented frame: the frame with its label colours blended in, as JPEG.

Frames are H x W x 3 uint8 RGB and labels H x W class ids of the same size (lowlatseg's
conventions); the legend is drawn by the page itself (HTML), not into the image.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from lowlatseg.classes import LabelSet
from lowlatseg.errors import UserError
from lowlatseg.overlay import colorize


@dataclass(frozen=True)
class Segmented:
    """One frame as the segmentation thread hands it to the page."""

    index: int  # frame number since the server started, from 0
    frame: np.ndarray  # H x W x 3 uint8 RGB
    labels: np.ndarray  # H x W uint8 class ids, the frame's size
    is_keyframe: bool


def check_alpha(alpha: float) -> float:
    """``alpha`` if it is an opacity in [0, 1], else a one-sentence :class:`UserError`."""
    if not 0.0 <= alpha <= 1.0:
        raise UserError(f"opacity {alpha} is outside [0, 1]; pick one such as 0.5")
    return alpha


class OverlayRenderer:
    """Blends the label colours into the frame at opacity ``alpha`` (0: the frame alone, 1: the
    labels alone) and encodes JPEG. ``alpha`` may be changed at any time, from any thread."""

    def __init__(self, labelset: LabelSet, *, alpha: float = 0.5, quality: int = 80) -> None:
        self.labelset = labelset
        self.quality = quality
        self._alpha = check_alpha(alpha)
        self._lock = threading.Lock()

    @property
    def alpha(self) -> float:
        return self._alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        with self._lock:
            self._alpha = check_alpha(value)

    def __call__(self, item: Segmented) -> bytes:
        alpha = self._alpha
        image = cv2.addWeighted(item.frame, 1 - alpha, colorize(item.labels, self.labelset), alpha, 0)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:  # (only for an empty image, which a decoded frame never is)
            raise ValueError(f"JPEG encoding failed for a {image.shape} frame")
        return buf.tobytes()
