"""CamVid-style datasets: a folder plus ``SPLIT.txt`` listing ``image label`` pairs.

Paths in the list are relative to the folder (exactly as in the SegNet tutorial layout:
``train/0001TP_006690.png trainannot/0001TP_006690.png``). Labels hold class ids
0..num_classes-1 and ``void_value`` (11 for CamVid) for void, mapped to ``IGNORE_INDEX``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowlatseg.classes import CAMVID, IGNORE_INDEX, LabelSet
from lowlatseg.data.images import read_label, read_rgb
from lowlatseg.errors import ParameterError, UserError


@dataclass(frozen=True)
class Sample:
    name: str  # file stem, e.g. 0016E5_07959
    image: Path
    label: Path | None


def read_split(root: str | Path, split: str) -> list[Sample]:
    """The samples of ``root/split.txt``; every named file must exist."""
    root = Path(root)
    if not root.is_dir():
        raise ParameterError(f"dataset folder {root} does not exist; pass {{data}} pointing at a folder with SPLIT.txt", "data")
    listing = root / f"{split}.txt"
    if not listing.is_file():
        found = sorted(p.stem for p in root.glob("*.txt"))
        raise UserError(
            f"split list {listing} does not exist; available splits in {root}: {', '.join(found) or 'none'}"
        )
    samples: list[Sample] = []
    for lineno, line in enumerate(listing.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) > 2:
            raise UserError(f"{listing}:{lineno} has {len(parts)} fields; each line must be 'image [label]'")
        image = root / parts[0]
        label = root / parts[1] if len(parts) == 2 else None
        for p in (image, label):
            if p is not None and not p.is_file():
                raise UserError(f"{listing}:{lineno} names {p}, which does not exist; fix the list or restore the file")
        samples.append(Sample(name=image.stem, image=image, label=label))
    if not samples:
        raise UserError(f"split list {listing} is empty; it must list 'image label' pairs")
    return samples


class SegmentationDataset:
    """Images and label maps of one split, optionally cached in memory (uint8).

    ``dataset[i]`` -> (image H x W x 3 uint8 RGB, label H x W uint8 with IGNORE_INDEX for void).
    """

    def __init__(
        self,
        samples: list[Sample],
        *,
        labels: LabelSet = CAMVID,
        void_value: int | None = 11,
        cache: bool = True,
    ) -> None:
        self.samples = samples
        self.labels = labels
        self.void_value = void_value
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        s = self.samples[i]
        image = read_rgb(s.image)
        if s.label is None:
            raise UserError(f"sample {s.name} has no label; this split cannot be used for training or evaluation")
        label = self.map_label(read_label(s.label))
        if label.shape != image.shape[:2]:
            raise UserError(
                f"label {s.label} is {label.shape[1]}x{label.shape[0]} but image {s.image} is "
                f"{image.shape[1]}x{image.shape[0]}; they must match"
            )
        if self._cache is not None:
            self._cache[i] = (image, label)
        return image, label

    def class_frequencies(self) -> np.ndarray:
        """Each class's share of the labelled (non-void) pixels of the split (num_classes floats, sum 1; all 0 if none)."""
        n = self.labels.num_classes
        counts = np.zeros(n, dtype=np.float64)
        for i, s in enumerate(self.samples):  # the labels only: images are neither read nor cached here
            if self._cache is not None and i in self._cache:
                lab = self._cache[i][1]
            elif s.label is None:
                raise UserError(f"sample {s.name} has no label; this split cannot be used for training or evaluation")
            else:
                lab = self.map_label(read_label(s.label))
            counts += np.bincount(lab[lab != IGNORE_INDEX].ravel(), minlength=n)[:n]
        return counts / max(counts.sum(), 1.0)

    def map_label(self, raw: np.ndarray) -> np.ndarray:
        out = raw.copy()
        if self.void_value is not None:
            out[raw == self.void_value] = IGNORE_INDEX
        out[(out >= self.labels.num_classes) & (out != IGNORE_INDEX)] = IGNORE_INDEX
        return out


def drive_of(sample: Sample) -> str:
    """The CamVid drive (sequence) of a frame: the part of its name before the first ``_``."""
    return sample.name.split("_", 1)[0]


def select_drive(samples: list[Sample], drive: str, *, keep: bool, source: str) -> list[Sample]:
    """The samples of one drive (``keep``) or all the others; an unknown drive is an error."""
    drives = sorted({drive_of(s) for s in samples})
    if drive not in drives:
        raise UserError(f"{source} has no drive {drive!r}; its drives are: {', '.join(drives)}")
    out = [s for s in samples if (drive_of(s) == drive) == keep]
    if not out:
        raise UserError(f"{source} has no frames outside drive {drive!r}; hold out another drive")
    return out


def camvid(root: str | Path, split: str, *, cache: bool = True, drive: str | None = None,
           without_drive: str | None = None) -> SegmentationDataset:
    """The CamVid split ``root/split.txt`` (11 classes, label 11 = void).

    ``drive``: only that drive's frames (e.g. a held-out dev-test drive); ``without_drive``:
    every frame but that drive's (the training split minus the held-out drive).
    """
    samples = read_split(root, split)
    if drive is not None:
        samples = select_drive(samples, drive, keep=True, source=f"split {split}")
    if without_drive is not None:
        samples = select_drive(samples, without_drive, keep=False, source=f"split {split}")
    return SegmentationDataset(samples, labels=CAMVID, void_value=11, cache=cache)
