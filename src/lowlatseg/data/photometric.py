"""Photometric augmentation for footage unlike CamVid's: dusk, rain, night, cheap cameras.

Each transform acts on an H x W x 3 uint8 RGB image and leaves the geometry (and so the label)
alone. :func:`photometric` applies each with its own probability, in a fixed order; its
randomness comes only from the ``rng`` it is given (reproducible per sample).

=============== =========== ====================================================
transform       probability range
=============== =========== ====================================================
brightness      0.8         factor 0.35-1.4 (dark frames down to a third)
contrast        0.8         factor 0.5-1.5 around the mean
gamma           0.5         0.6-1.8 (> 1 darkens the mid-tones, as at dusk)
blur            0.2         Gaussian, sigma 0.5-1.8 px (focus, motion, rain drops)
noise           0.3         Gaussian, sigma 2-12 grey levels (sensor noise at night)
JPEG            0.3         quality 25-90 (compressed streams)
=============== =========== ====================================================
"""

from __future__ import annotations

import cv2
import numpy as np


def brightness_contrast(image: np.ndarray, brightness: float, contrast: float) -> np.ndarray:
    f = image.astype(np.float32) * brightness
    mean = float(f.mean())
    return np.clip((f - mean) * contrast + mean, 0, 255).astype(np.uint8)


def gamma(image: np.ndarray, g: float) -> np.ndarray:
    """``255 * (x / 255) ** g`` through a lookup table; g = 1 is the identity."""
    lut = np.clip(np.round(255.0 * (np.arange(256) / 255.0) ** g), 0, 255).astype(np.uint8)
    return cv2.LUT(image, lut)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma)


def noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    n = rng.normal(0.0, sigma, size=image.shape).astype(np.float32)
    return np.clip(image.astype(np.float32) + n, 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Round trip through JPEG at ``quality`` (RGB in, RGB out)."""
    ok, buf = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    if decoded is None:  # pragma: no cover - OpenCV always encodes a uint8 RGB image
        return image
    return np.ascontiguousarray(decoded[:, :, ::-1])


def photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The table's transforms, each with its probability; returns a new H x W x 3 uint8 image."""
    out = np.ascontiguousarray(image)
    b = rng.uniform(0.35, 1.4) if rng.random() < 0.8 else 1.0
    c = rng.uniform(0.5, 1.5) if rng.random() < 0.8 else 1.0
    if b != 1.0 or c != 1.0:
        out = brightness_contrast(out, b, c)
    if rng.random() < 0.5:
        out = gamma(out, rng.uniform(0.6, 1.8))
    if rng.random() < 0.2:
        out = blur(out, rng.uniform(0.5, 1.8))
    if rng.random() < 0.3:
        out = noise(out, rng.uniform(2.0, 12.0), rng)
    if rng.random() < 0.3:
        out = jpeg(out, int(rng.integers(25, 91)))
    return out
