"""``lowlatseg eval image``: the per-frame network on a labelled split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from lowlatseg.checkpoint import DEFAULT_WEIGHTS, load_model
from lowlatseg.errors import ParameterError
from lowlatseg.evaluation.commands.loading import check_classes
from lowlatseg.scoring import ImageEvalResult, evaluate_images


@dataclass(frozen=True)
class ImageEvalOptions:
    data: str
    split: str
    dataset: str = "camvid"  # folder layout: camvid | cityscapes
    weights: str | None = None  # None: the bundled model
    drive: str | None = None  # only this drive's frames (e.g. a held-out dev-test drive)
    size: str | None = None  # HxW: the network runs on frames resized to it; labels scored at full size
    progress: bool = True


@dataclass(frozen=True)
class ImageEval:
    """What ``eval image`` measured (``to_json``: the JSON file's fields)."""

    scores: ImageEvalResult
    weights: str
    data: str
    split: str
    drive: str | None
    resolution: str  # "native" or HxW
    threads: int

    def to_json(self) -> dict[str, Any]:
        out = self.scores.to_dict()
        out.update({"weights": self.weights, "data": self.data, "split": self.split, "drive": self.drive,
                    "resolution": self.resolution, "threads": self.threads})
        return out


def eval_image(opts: ImageEvalOptions) -> ImageEval:
    """Per-image mIoU of the per-frame network (``size`` HxW: the network runs on frames resized
    to it and its labels are scored at the frames' own size, nearest-neighbour)."""
    from lowlatseg.data.datasets import open_dataset
    from lowlatseg.runtime import parse_size

    input_size = None
    if opts.size is not None:
        parsed = parse_size(opts.size)
        if not isinstance(parsed, tuple):
            raise ParameterError(f"{{size}} {opts.size} must be HxW (e.g. 288x384)", "size")
        input_size = parsed
    ds = open_dataset(opts.dataset, opts.data, opts.split, drive=opts.drive)
    model = load_model(opts.weights)
    check_classes(model, ds)
    bar = tqdm(range(len(ds)), desc=f"eval {opts.split}", unit="frame", disable=not opts.progress)
    scores = evaluate_images(model, ds, progress=bar, size=input_size)
    return ImageEval(scores=scores, weights=str(opts.weights or DEFAULT_WEIGHTS), data=str(opts.data), split=opts.split,
                     drive=opts.drive, resolution="native" if input_size is None else f"{input_size[0]}x{input_size[1]}",
                     threads=torch.get_num_threads())
