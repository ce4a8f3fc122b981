"""Confusion-matrix metrics. One matrix accumulates over a whole split; IGNORE_INDEX never counts."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from lowlatseg.classes import IGNORE_INDEX


@dataclass
class Confusion:
    """num_classes x num_classes counts; rows = ground truth, columns = prediction."""

    num_classes: int
    matrix: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> None:
        """Add one or more label maps (any shape, same for both); target == IGNORE_INDEX is skipped."""
        p = torch.as_tensor(pred).reshape(-1).long().cpu()
        t = torch.as_tensor(target).reshape(-1).long().cpu()
        if p.shape != t.shape:
            raise ValueError(f"prediction has {p.numel()} pixels but target has {t.numel()}")
        if p.numel() and (p.min() < 0 or p.max() >= self.num_classes):
            raise ValueError(f"predictions must be class ids 0..{self.num_classes - 1}, got {int(p.min())}..{int(p.max())}")
        keep = t != IGNORE_INDEX
        if not bool(keep.all()):  # void pixels to skip (agreement targets have none: no copies then)
            p, t = p[keep], t[keep]
        if t.numel() and (t.min() < 0 or t.max() >= self.num_classes):
            raise ValueError(f"targets must be 0..{self.num_classes - 1} or {IGNORE_INDEX}, got up to {int(t.max())}")
        idx = t * self.num_classes + p
        self.matrix += torch.bincount(idx, minlength=self.num_classes**2).reshape(self.num_classes, -1).numpy()

    def merge(self, other: Confusion) -> None:
        self.matrix += other.matrix

    def iou(self) -> np.ndarray:
        """Per-class IoU in [0, 1]; NaN for a class absent from both prediction and target."""
        tp = np.diag(self.matrix).astype(np.float64)
        denom = self.matrix.sum(0) + self.matrix.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)

    def miou(self) -> float:
        """Mean IoU over classes present in target or prediction, in percent (a class absent from
        both has no defined IoU and is left out, as in cityscapesscripts; on CamVid val every
        class is present, so this is the mean over all 11)."""
        iou = self.iou()
        return float(np.nanmean(iou) * 100) if np.isfinite(iou).any() else float("nan")

    def pixel_accuracy(self) -> float:
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total * 100) if total else float("nan")
