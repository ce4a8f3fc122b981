"""Synthetic video pairs from labelled stills: smooth camera motion plus independently moving objects.

A pair is (keyframe, current frame ``gap`` frames later at 30 fps) made from one still:

* camera motion: a homography per frame that composes a forward zoom towards a vanishing
  point (driving), a pan, a roll and a small perspective change; ``gap`` frames of it
  separate the two views. Labels are warped with the same homography (nearest), so they are
  exact; pixels that come from outside the still are void (IGNORE_INDEX);
* moving objects: cars / pedestrians / cyclists cut out of other stills with their label masks
  and pasted at a position that moves (and grows) between the two frames, so the pair has
  occlusions and disocclusions that camera motion alone never makes.

Everything is a deterministic function of the ``rng`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lowlatseg.classes import IGNORE_INDEX


@dataclass(frozen=True)
class MotionConfig:
    max_gap: int = 10  # frames at 30 fps between keyframe and current frame
    zoom_per_frame: tuple[float, float] = (0.0, 0.012)  # forward motion: scale change per frame
    pan_px_per_frame: float = 2.5  # std of horizontal pan, pixels per frame at 480 px width
    tilt_px_per_frame: float = 0.8  # std of vertical pan
    roll_deg_per_frame: float = 0.15  # std of roll
    perspective: float = 2e-6  # std of the homography's perspective terms per frame
    objects: tuple[int, int] = (0, 3)  # number of pasted moving objects (min, max)
    object_px_per_frame: float = 3.0  # std of pasted object velocity
    object_classes: tuple[int, ...] = (8, 9, 10)  # CamVid Car, Pedestrian, Bicyclist


def _camera(rng: np.random.Generator, cfg: MotionConfig, h: int, w: int, gap: int) -> np.ndarray:
    """3 x 3 homography mapping keyframe pixel coordinates to current-frame coordinates."""
    s = (1 + rng.uniform(*cfg.zoom_per_frame)) ** gap
    vx, vy = rng.uniform(0.35, 0.65) * w, rng.uniform(0.3, 0.5) * h  # vanishing point
    zoom = np.array([[s, 0, vx * (1 - s)], [0, s, vy * (1 - s)], [0, 0, 1]])
    tx = rng.normal(0, cfg.pan_px_per_frame) * gap * w / 480
    ty = rng.normal(0, cfg.tilt_px_per_frame) * gap * h / 360
    a = np.deg2rad(rng.normal(0, cfg.roll_deg_per_frame) * gap)
    c, si = np.cos(a), np.sin(a)
    cx, cy = w / 2, h / 2
    roll = np.array([[c, -si, cx - c * cx + si * cy], [si, c, cy - si * cx - c * cy], [0, 0, 1]])
    pan = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    persp = np.eye(3)
    persp[2, :2] = rng.normal(0, cfg.perspective, 2) * gap
    return pan @ roll @ zoom @ persp


def _warp(image: np.ndarray, label: np.ndarray, H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = label.shape
    img = cv2.warpPerspective(image, H, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    lab = cv2.warpPerspective(label, H, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=IGNORE_INDEX)
    return img, lab


def _cut_object(image: np.ndarray, label: np.ndarray, classes: tuple[int, ...], rng: np.random.Generator):
    """A random connected object of the given classes: (rgb patch, label patch, mask) or None."""
    mask = np.isin(label, classes).astype(np.uint8)
    n, comp, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    cands = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] > 150]
    if not cands:
        return None
    i = cands[int(rng.integers(len(cands)))]
    x, y, w, h = stats[i, :4]
    m = comp[y : y + h, x : x + w] == i
    return image[y : y + h, x : x + w].copy(), label[y : y + h, x : x + w].copy(), m


def _paste(image: np.ndarray, label: np.ndarray, obj, x: float, y: float, scale: float) -> None:
    rgb, lab, m = obj
    oh, ow = m.shape
    nh, nw = max(2, int(round(oh * scale))), max(2, int(round(ow * scale)))
    rgb = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    lab = cv2.resize(lab, (nw, nh), interpolation=cv2.INTER_NEAREST)
    m = cv2.resize(m.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST).astype(bool)
    H, W = label.shape
    x0, y0 = int(round(x)), int(round(y))
    xa, ya, xb, yb = max(0, x0), max(0, y0), min(W, x0 + nw), min(H, y0 + nh)
    if xa >= xb or ya >= yb:
        return
    sub = m[ya - y0 : yb - y0, xa - x0 : xb - x0]
    image[ya:yb, xa:xb][sub] = rgb[ya - y0 : yb - y0, xa - x0 : xb - x0][sub]
    label[ya:yb, xa:xb][sub] = lab[ya - y0 : yb - y0, xa - x0 : xb - x0][sub]


def synth_pair(
    image: np.ndarray, label: np.ndarray, donors: list[tuple[np.ndarray, np.ndarray]], cfg: MotionConfig,
    rng: np.random.Generator, gap: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """(key image, key label, current image, current label, gap) from one still.

    image: H x W x 3 uint8 RGB, label: H x W uint8 (IGNORE_INDEX = void); donors: stills to
    cut moving objects from.
    """
    h, w = label.shape
    gap = int(rng.integers(1, cfg.max_gap + 1)) if gap is None else gap
    # the keyframe is a slightly zoomed view of the still so the camera has margin to move in
    s0 = rng.uniform(1.0, 1.15)
    K = np.array([[s0, 0, w / 2 * (1 - s0)], [0, s0, h / 2 * (1 - s0)], [0, 0, 1]])
    key_img, key_lab = _warp(image, label, K)
    cur_img, cur_lab = _warp(image, label, _camera(rng, cfg, h, w, gap) @ K)
    for _ in range(int(rng.integers(cfg.objects[0], cfg.objects[1] + 1))):
        donor = donors[int(rng.integers(len(donors)))]
        obj = _cut_object(donor[0], donor[1], cfg.object_classes, rng)
        if obj is None:
            continue
        x, y = rng.uniform(-0.1, 0.9) * w, rng.uniform(0.3, 0.8) * h
        vx, vy = rng.normal(0, cfg.object_px_per_frame, 2) * gap
        grow = (1 + rng.uniform(-0.01, 0.02)) ** gap
        _paste(key_img, key_lab, obj, x, y, 1.0)
        _paste(cur_img, cur_lab, obj, x + vx, y + vy * 0.3, grow)
    return key_img, key_lab, cur_img, cur_lab, gap
