"""Reading images and label maps from disk with clear errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lowlatseg.errors import UserError


def read_rgb(path: str | Path) -> np.ndarray:
    """H x W x 3 uint8 RGB."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"image {p} does not exist; check the path or the split list that names it")
    img = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if img is None:
        raise UserError(f"image {p} cannot be decoded; replace it with a valid PNG or JPEG")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_label(path: str | Path) -> np.ndarray:
    """H x W uint8 label map (values as stored in the file)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"label {p} does not exist; check the path or the split list that names it")
    lab = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise UserError(f"label {p} cannot be decoded; replace it with a valid single-channel PNG")
    if lab.ndim == 3:
        lab = lab[..., 0]
    return lab.astype(np.uint8)
