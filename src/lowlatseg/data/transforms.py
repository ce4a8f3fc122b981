"""Training augmentations on (image H x W x 3 uint8 RGB, label H x W uint8) pairs, in numpy/OpenCV.

Geometry is applied to image (bilinear) and label (nearest) alike; padding uses
IGNORE_INDEX for labels so padded pixels never count in the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from lowlatseg.classes import IGNORE_INDEX
from lowlatseg.data.photometric import photometric


@dataclass(frozen=True)
class AugmentConfig:
    crop: tuple[int, int] = (288, 384)  # H, W of training crops (smaller than 360x480: faster epochs)
    scale: tuple[float, float] = (0.75, 2.0)  # random rescale range before cropping
    hflip: bool = True
    color: float = 0.3  # strength of brightness / contrast / saturation jitter (0 = off)
    photometric: bool = False  # dusk / rain / night / camera transforms (data/photometric.py), after the jitter


def augment(image: np.ndarray, label: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random scale, pad, crop, flip and colour jitter; returns a crop of size ``cfg.crop``."""
    s = rng.uniform(*cfg.scale)
    h, w = label.shape
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label, (nw, nh), interpolation=cv2.INTER_NEAREST)
    ch, cw = cfg.crop
    ph, pw = max(0, ch - nh), max(0, cw - nw)
    if ph or pw:
        image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(124, 116, 104))
        label = cv2.copyMakeBorder(label, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=IGNORE_INDEX)
    y = int(rng.integers(0, image.shape[0] - ch + 1))
    x = int(rng.integers(0, image.shape[1] - cw + 1))
    image, label = image[y : y + ch, x : x + cw], label[y : y + ch, x : x + cw]
    if cfg.hflip and rng.random() < 0.5:
        image, label = image[:, ::-1], label[:, ::-1]
    if cfg.color > 0:
        image = color_jitter(image, cfg.color, rng)
    if cfg.photometric:
        image = photometric(image, rng)
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


def color_jitter(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    f = image.astype(np.float32)
    f = f * rng.uniform(1 - strength, 1 + strength)  # brightness
    mean = f.mean()
    f = (f - mean) * rng.uniform(1 - strength, 1 + strength) + mean  # contrast
    grey = f.mean(axis=2, keepdims=True)
    f = (f - grey) * rng.uniform(1 - strength, 1 + strength) + grey  # saturation
    return np.clip(f, 0, 255).astype(np.uint8)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 RGB -> 3 x H x W float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


def label_tensor(label: np.ndarray) -> torch.Tensor:
    """H x W uint8 -> H x W int64."""
    return torch.from_numpy(np.ascontiguousarray(label)).long()
