"""Per-image scoring of a segmentation network on a labelled split: what training validates with
and `eval image` reports (neutral: imported by train/ and evaluation/, importing neither)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from lowlatseg.classes import LabelSet
from lowlatseg.data.camvid import SegmentationDataset
from lowlatseg.data.transforms import to_tensor
from lowlatseg.metrics import Confusion
from lowlatseg.nn.labels import upsampled_labels
from lowlatseg.nn.splitnet import SplitSegNet, to_labels


def _labels(model: SplitSegNet, x: torch.Tensor) -> torch.Tensor:
    """1 x 3 x H x W -> H x W int64 labels of ``model(x)``; on the CPU through the runtime's label
    map (nn/labels.py: the same labels without upsampling every logit)."""
    if x.device.type != "cpu":  # the label map's tensor version indexes with CPU tensors: the full upsampling here
        return to_labels(model(x))[0].cpu()
    f_low = model.low(x)
    return upsampled_labels(model.head(model.high(f_low), f_low), (x.shape[-2], x.shape[-1]))[0]


@torch.inference_mode()
def predict(model: SplitSegNet, image: np.ndarray, size: tuple[int, int] | None = None) -> torch.Tensor:
    """H x W x 3 uint8 RGB -> H x W int64 class ids (the per-frame network). ``size`` (h, w): the
    network sees the image resized to it (area); its labels are resized back (nearest)."""
    h, w = image.shape[:2]
    if size is not None and tuple(size) != (h, w):
        small = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        x = to_tensor(small).unsqueeze(0).to(next(model.parameters()).device)
        lab = _labels(model, x).numpy().astype(np.uint8)
        return torch.from_numpy(cv2.resize(lab, (w, h), interpolation=cv2.INTER_NEAREST).astype(np.int64))
    x = to_tensor(image).unsqueeze(0).to(next(model.parameters()).device)
    return _labels(model, x)


@dataclass
class ImageEvalResult:
    confusion: Confusion
    labels: LabelSet
    frames: int

    def to_dict(self) -> dict[str, Any]:
        iou = self.confusion.iou()
        return {
            "miou": round(self.confusion.miou(), 2),
            "per_class_iou": {
                name: (round(float(v) * 100, 2) if np.isfinite(v) else None)
                for name, v in zip(self.labels.classes, iou)
            },
            "pixel_accuracy": round(self.confusion.pixel_accuracy(), 2),
            "frames": self.frames,
        }


def evaluate_images(
    model: SplitSegNet, dataset: SegmentationDataset, *, progress: Iterable[int] | None = None,
    size: tuple[int, int] | None = None,
) -> ImageEvalResult:
    """One confusion matrix over every frame of the dataset (``size``: see :func:`predict`)."""
    conf = Confusion(dataset.labels.num_classes)
    indices = progress if progress is not None else range(len(dataset))
    n = 0
    for i in indices:
        image, label = dataset[i]
        conf.update(predict(model, image, size), label)
        n += 1
    return ImageEvalResult(confusion=conf, labels=dataset.labels, frames=n)
