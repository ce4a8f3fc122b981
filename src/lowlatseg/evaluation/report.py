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


def _load_prop(weights: str | None, propagation: str | None):
    from lowlatseg.propagation.weights import load_propagation

    model = load_model(weights)
    prop_cfg, adaptive, uniform = load_propagation(propagation, model)
    return model, prop_cfg, adaptive, uniform


def _finish_video(result: dict[str, Any], extra: dict[str, Any], json_path: Path | None) -> dict[str, Any]:
    from lowlatseg.evaluation.video import format_rows

    result.update(extra)
    result["threads"] = torch.get_num_threads()
    print(format_rows(result))
    print(", ".join(f"{k} {v}" for k, v in extra.items()) + f", threads {result['threads']}")
    if json_path is not None:
        write_json(result, json_path)
    return result


def run_video_eval(
    *, data: str, split: str, interval: int, weights: str | None = None, propagation: str | None = None,
    json_path: Path | None = None, progress: bool = True, max_frames: int = 0,
) -> dict[str, Any]:
    """``lowlatseg eval video``: the propagation benchmark on a labelled clip."""
    from lowlatseg.data.camvid import camvid
    from lowlatseg.data.transforms import to_tensor
    from lowlatseg.evaluation.video import check_time_order, run_protocol, standard_rows

    if interval < 1:
        raise UserError(f"--interval {interval} is not valid; it must be at least 1")
    if json_path is not None:
        _check_parent(json_path)
    ds = camvid(data, split)
    check_time_order(ds.samples)
    model, prop_cfg, adaptive, uniform = _load_prop(weights, propagation)
    n = len(ds) if not max_frames else min(max_frames, len(ds))
    frames = ((to_tensor(ds[i][0]).unsqueeze(0), ds[i][1]) for i in range(n))
    bar = tqdm(total=n, desc=f"eval video N={interval}", unit="frame", disable=not progress)
    res = run_protocol(model, standard_rows(prop_cfg, adaptive, uniform), frames, interval=interval,
                       num_classes=ds.labels.num_classes, progress=bar.update)
    bar.close()
    h, w = ds[0][0].shape[:2]
    classes = list(ds.labels.classes)
    for r in res["rows"]:
        r["per_class_iou"] = dict(zip(classes, r["per_class_iou"]))
    extra = {"data": str(data), "split": split, "resolution": f"{h}x{w}",
             "weights": str(weights or DEFAULT_WEIGHTS), "propagation": str(propagation or "bundled")}
    return _finish_video(res, extra, json_path)


def run_agreement_eval(
    *, video: str, interval: int, size: str = "360", weights: str | None = None, propagation: str | None = None,
    json_path: Path | None = None, progress: bool = True, max_frames: int = 0,
) -> dict[str, Any]:
    """``lowlatseg eval agreement``: the same methods on unlabelled video, scored against the per-frame network."""
    from lowlatseg.evaluation.video import run_protocol, standard_rows
    from lowlatseg.io.video import VideoReader
    from lowlatseg.runtime import network_size, parse_size, prepare

    if interval < 1:
        raise UserError(f"--interval {interval} is not valid; it must be at least 1")
    if json_path is not None:
        _check_parent(json_path)
    size_spec = parse_size(size)
    model, prop_cfg, adaptive, uniform = _load_prop(weights, propagation)
    reader = VideoReader(video)
    hw = network_size((reader.info.height, reader.info.width), size_spec)

    def frames():
        for i, f in enumerate(reader):
            if max_frames and i >= max_frames:
                break
            yield prepare(f, hw), None

    total = min(reader.info.frames, max_frames) if max_frames and reader.info.frames else (max_frames or reader.info.frames or None)
    bar = tqdm(total=total, desc=f"agreement N={interval}", unit="frame", disable=not progress)
    try:
        res = run_protocol(model, standard_rows(prop_cfg, adaptive, uniform), frames(), interval=interval,
                           num_classes=model.config.num_classes, progress=bar.update)
    finally:
        bar.close()
        reader.close()
    extra = {"video": str(video), "resolution": f"{hw[0]}x{hw[1]}", "fps": reader.info.fps,
             "weights": str(weights or DEFAULT_WEIGHTS), "propagation": str(propagation or "bundled"),
             "reference": "per-frame network labels"}
    return _finish_video(res, extra, json_path)
