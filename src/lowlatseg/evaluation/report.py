"""Evaluation commands: run, print a table, write JSON (atomically)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from lowlatseg.checkpoint import DEFAULT_WEIGHTS, load_model
from lowlatseg.errors import UserError
from lowlatseg.evaluation.image import evaluate_images


def _check_parent(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"cannot write {path}: folder {parent} does not exist; create it or choose another path")
    if not os.access(parent, os.W_OK):
        raise UserError(f"cannot write {path}: folder {parent} is not writable")


def write_json(obj: Any, path: Path) -> None:
    _check_parent(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def format_table(rows: list[tuple[str, str]], header: tuple[str, str]) -> str:
    w = max(len(header[0]), *(len(r[0]) for r in rows))
    lines = [f"{header[0]:<{w}}  {header[1]:>7}", f"{'-' * w}  {'-' * 7}"]
    lines += [f"{a:<{w}}  {b:>7}" for a, b in rows]
    return "\n".join(lines)


def run_image_eval(
    *, data: str, split: str, dataset: str = "camvid", weights: str | None = None,
    json_path: Path | None = None, progress: bool = True,
) -> dict[str, Any]:
    """``lowlatseg eval image``: per-frame network on a labelled split."""
    from lowlatseg.train.base import open_dataset

    if json_path is not None:
        _check_parent(json_path)
    ds = open_dataset(dataset, data, split)
    model = load_model(weights)
    if model.config.num_classes != ds.labels.num_classes:
        raise UserError(
            f"the weights predict {model.config.num_classes} classes but {dataset} has {ds.labels.num_classes}; "
            "pass weights trained on this label set"
        )
    bar = tqdm(range(len(ds)), desc=f"eval {split}", unit="frame", disable=not progress)
    res = evaluate_images(model, ds, progress=bar)
    out = res.to_dict()
    out.update({
        "weights": str(weights or DEFAULT_WEIGHTS),
        "data": str(data),
        "split": split,
        "resolution": "native",
        "threads": torch.get_num_threads(),
    })
    rows = [(k, "-" if v is None else f"{v:.2f}") for k, v in out["per_class_iou"].items()]
    rows.append(("mIoU", f"{out['miou']:.2f}"))
    print(format_table(rows, ("class", "IoU %")))
    print(f"{out['frames']} frames of {data} split {split}, weights {out['weights']}")
    if json_path is not None:
        write_json(out, json_path)
    return out
