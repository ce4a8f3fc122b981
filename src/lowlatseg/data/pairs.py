"""Training pairs (keyframe, current frame) for the propagation and scheduler trainers.

A pair comes either from real video (two frames ``gap`` frames apart, same random crop; no
label: the per-frame network labels it) or from a labelled still moved by synthetic camera
motion (:mod:`lowlatseg.data.synthetic`; exact label of the current frame). Every random choice
is drawn from the ``rng`` passed in, in a fixed order, so a seed fixes the whole stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lowlatseg.data.camvid import SegmentationDataset
from lowlatseg.data.synthetic import MotionConfig, synth_pair
from lowlatseg.data.video_pairs import VideoPairStream


@dataclass
class PairSampler:
    stills: SegmentationDataset  # labelled stills (image H x W x 3 uint8, label H x W uint8)
    donors: list[tuple[np.ndarray, np.ndarray]]  # stills to cut moving objects from
    clips: list[list[np.ndarray]]  # decoded videos, frames at least crop-sized
    motion: MotionConfig
    crop: tuple[int, int]  # H, W of both frames
    video_fraction: float  # share of pairs from video (when there are clips)
    max_video_gap: int  # frames, at the clip's own rate
    min_gap: int = 1  # 0 allows a frame paired with itself
    flip: bool = True  # random horizontal flip of the pair
    stream: VideoPairStream | None = None  # many videos, streamed (used instead of ``clips`` when given)

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(key image, current image, current label or None for video pairs)."""
        ch, cw = self.crop
        if (self.clips or self.stream is not None) and rng.random() < self.video_fraction:
            if self.stream is not None:
                a, b, _ = self.stream.pair(rng)
            else:
                clip = self.clips[int(rng.integers(len(self.clips)))]
                gap = int(rng.integers(self.min_gap, min(self.max_video_gap, len(clip) - 1) + 1))
                t = int(rng.integers(gap, len(clip)))
                a, b = clip[t - gap], clip[t]
            y0 = int(rng.integers(0, a.shape[0] - ch + 1))
            x0 = int(rng.integers(0, a.shape[1] - cw + 1))
            key, cur, label = a[y0 : y0 + ch, x0 : x0 + cw], b[y0 : y0 + ch, x0 : x0 + cw], None
        else:
            img, lab = self.stills[int(rng.integers(len(self.stills)))]
            if img.shape[:2] != (ch, cw):
                img = cv2.resize(img, (cw, ch), interpolation=cv2.INTER_AREA)
                lab = cv2.resize(lab, (cw, ch), interpolation=cv2.INTER_NEAREST)
            gap = int(rng.integers(self.min_gap, self.motion.max_gap + 1))
            if gap == 0:
                key, cur, label = img, img, lab
            else:
                key, _, cur, label, _ = synth_pair(img, lab, self.donors, self.motion, rng, gap=gap)
        if self.flip and rng.random() < 0.5:
            key, cur = key[:, ::-1], cur[:, ::-1]
            label = None if label is None else label[:, ::-1]
        return key, cur, label
