"""One entry point to the labelled datasets, by folder layout."""

from __future__ import annotations

from lowlatseg.data.camvid import SegmentationDataset, camvid, select_drive
from lowlatseg.data.cityscapes import cityscapes
from lowlatseg.errors import UserError


def open_dataset(kind: str, root: str, split: str, *, drive: str | None = None,
                 without_drive: str | None = None) -> SegmentationDataset:
    """The split of a ``camvid`` (SPLIT.txt lists) or ``cityscapes`` (official layout) folder.

    ``drive`` keeps only one drive's frames, ``without_drive`` drops one (CamVid: the name
    before the first ``_``; Cityscapes: the city).
    """
    if kind == "camvid":
        return camvid(root, split, drive=drive, without_drive=without_drive)
    if kind == "cityscapes":
        ds = cityscapes(root, split)
        if drive is not None:
            ds.samples = select_drive(ds.samples, drive, keep=True, source=f"split {split}")
        if without_drive is not None:
            ds.samples = select_drive(ds.samples, without_drive, keep=False, source=f"split {split}")
        return ds
    raise UserError(f"unknown dataset format {kind!r}; choose camvid or cityscapes")
