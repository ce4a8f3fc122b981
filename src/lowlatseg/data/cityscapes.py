"""Cityscapes' folder layout: ``leftImg8bit/SPLIT/CITY/*_leftImg8bit.png`` with
``gtFine/SPLIT/CITY/*_gtFine_labelIds.png``; labelIds are mapped to the 19 train ids
(everything else -> IGNORE_INDEX) with cityscapesscripts' official label table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lowlatseg.classes import CITYSCAPES, IGNORE_INDEX
from lowlatseg.data.camvid import Sample, SegmentationDataset
from lowlatseg.errors import ParameterError, UserError


def label_id_to_train_id() -> np.ndarray:
    """256-entry lookup table labelId -> trainId (IGNORE_INDEX for ignored classes)."""
    from cityscapesscripts.helpers.labels import labels

    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for lab in labels:
        if 0 <= lab.id < 256 and 0 <= lab.trainId < 19:
            lut[lab.id] = lab.trainId
    return lut


class CityscapesDataset(SegmentationDataset):
    """Cityscapes split; labels are labelIds on disk, train ids (19 classes) in memory."""

    def __init__(self, samples: list[Sample], *, cache: bool = True) -> None:
        super().__init__(samples, labels=CITYSCAPES, void_value=None, cache=cache)
        self._lut = label_id_to_train_id()

    def map_label(self, raw: np.ndarray) -> np.ndarray:
        return self._lut[raw]


def cityscapes_samples(root: str | Path, split: str) -> list[Sample]:
    root = Path(root)
    img_dir = root / "leftImg8bit" / split
    if not img_dir.is_dir():
        raise ParameterError(f"{img_dir} does not exist; {{data}} must be a Cityscapes root with leftImg8bit/ and gtFine/", "data")
    samples = []
    for img in sorted(img_dir.glob("*/*_leftImg8bit.png")):
        stem = img.name[: -len("_leftImg8bit.png")]
        lab = root / "gtFine" / split / img.parent.name / f"{stem}_gtFine_labelIds.png"
        if not lab.is_file():
            raise UserError(f"label {lab} for image {img} does not exist; restore gtFine or drop the image")
        samples.append(Sample(name=stem, image=img, label=lab))
    if not samples:
        raise UserError(f"no *_leftImg8bit.png images under {img_dir}")
    return samples


def cityscapes(root: str | Path, split: str, *, cache: bool = True) -> CityscapesDataset:
    return CityscapesDataset(cityscapes_samples(root, split), cache=cache)
