"""Pseudo-labels for self-training: a teacher network labels frames of unlabelled videos.

``lowlatseg train pseudo-labels`` streams each video front to back (never whole in memory),
keeps one frame every ``every_s`` seconds of video (with ``max_per_video``, at most that many of
them, spread evenly over the clip, so a long static camera does not swamp the set), resizes it to ``height`` (aspect kept),
and lets the teacher label it. The teacher's class probabilities are averaged over its test-time
views (the frame resized by each of ``scales``, and each one's mirror image); a pixel whose averaged top
probability is below ``min_confidence`` is void, so the student is not taught the teacher's
guesses.

The output folder is a CamVid-format split that ``train base --extra-data DIR`` reads::

    DIR/images/NAME.png    H x W x 3 RGB (the frame as the teacher saw it)
    DIR/labels/NAME.png    H x W uint8 class ids; num_classes = void
    DIR/pseudo.txt         'images/NAME.png labels/NAME.png', one line per labelled frame
    DIR/pseudo.json        the config, the teacher's fingerprint, per-video counts, void share

``NAME`` is ``CLIP_FRAME``, ``CLIP`` the video's stem without ``_`` or spaces (:func:`clip_names`),
so a name's drive (the part before the first ``_``) is its video. ``pseudo.txt`` grows one flushed line after both
files of a frame are written: an interrupted run leaves a valid, shorter split.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from lowlatseg.data.transforms import to_tensor
from lowlatseg.data.video_pairs import check_videos
from lowlatseg.errors import ParameterError, UserError
from lowlatseg.io.video import VideoReader
from lowlatseg.nn.splitnet import SplitSegNet

LIST_NAME = "pseudo"  # the split's name: DIR/pseudo.txt


@dataclass(frozen=True)
class PseudoLabelConfig:
    teacher: str | None = None  # weights file or run of the teacher (None: the bundled default model)
    videos: tuple[str, ...] = ()  # unlabelled videos; never the clips results are reported on
    every_s: float = 1.0  # one frame per this many seconds of video
    max_per_video: int = 0  # >0: at most this many frames a video, spread over the whole clip
    height: int = 360  # frames are stored and labelled at this height, aspect kept
    min_confidence: float = 0.7  # averaged top probability below this: void
    flip: bool = True  # average with the mirror image's probabilities
    scales: tuple[float, ...] = (1.0,)  # the teacher sees the frame at each of these scales (1.0: as stored)


@torch.inference_mode()
def teacher_probabilities(model: SplitSegNet, image: np.ndarray, *, flip: bool = True,
                          scales: Sequence[float] = (1.0,)) -> torch.Tensor:
    """H x W x 3 uint8 RGB -> num_classes x H x W softmax probabilities, averaged over the views
    (each scale, and its mirror image when ``flip``), each upsampled to H x W first."""
    h, w = image.shape[:2]
    total: torch.Tensor | None = None
    views = 0
    for s in scales:
        size = (max(32, round(h * s)), max(32, round(w * s)))
        im = image if size == (h, w) else cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        x = to_tensor(im).unsqueeze(0)
        batch = torch.cat([x, x.flip(-1)]) if flip else x
        logits = model(batch)  # V x C x h x w
        if flip:
            logits = torch.stack([logits[0], logits[1].flip(-1)])
        p = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False).softmax(1).sum(0)
        total = p if total is None else total + p
        views += logits.shape[0]
    assert total is not None
    return total / views


def confident_labels(prob: torch.Tensor, min_confidence: float, void: int) -> np.ndarray:
    """C x H x W probabilities -> H x W uint8 argmax, ``void`` where the top probability is below ``min_confidence``."""
    top, lab = prob.max(0)
    lab[top < min_confidence] = void
    return lab.numpy().astype(np.uint8)


def frame_step(fps: float, cfg: PseudoLabelConfig) -> int:
    """Frames between two candidate frames of a clip: ``every_s`` seconds (at least 1)."""
    return max(1, round(cfg.every_s * fps))


def frame_indices(fps: float, frames: int, cfg: PseudoLabelConfig) -> np.ndarray | None:
    """The frames of a clip of ``frames`` frames to label: one every ``every_s`` seconds, and with
    ``max_per_video`` at most that many of those, spread evenly over the clip. None when the
    length is unknown (0): then every step is taken, up to ``max_per_video`` from the start."""
    if frames <= 0:
        return None
    grid = np.arange(0, frames, frame_step(fps, cfg))
    if 0 < cfg.max_per_video < len(grid):
        grid = grid[np.linspace(0, len(grid) - 1, cfg.max_per_video).round().astype(int)]
    return grid


def clip_names(paths: Sequence[str]) -> list[str]:
    """One file-name stem per clip: its own stem with every run of characters other than letters,
    digits, ``.`` and ``-`` turned into ``-`` (so the name has no ``_`` and no space), made unique
    with ``-2``, ``-3``, ... when two clips would share it."""
    names: list[str] = []
    for p in paths:
        base = re.sub(r"[^A-Za-z0-9.-]+", "-", Path(p).stem).strip("-") or "clip"
        name, k = base, 1
        while name in names:
            k += 1
            name = f"{base}-{k}"
        names.append(name)
    return names


def check_config(cfg: PseudoLabelConfig) -> None:
    if not cfg.videos:
        raise UserError("no videos to label; pass --video FILE (repeatable) or --video-dir DIR")
    if cfg.every_s <= 0:
        raise ParameterError(f"{{every}} {cfg.every_s} must be above 0: seconds of video between two labelled frames", "every")
    if not 0 <= cfg.min_confidence < 1:
        raise ParameterError(f"{{min_confidence}} {cfg.min_confidence} must be in [0, 1): below it a pixel is void", "min_confidence")
    if not cfg.scales or any(s <= 0 for s in cfg.scales):
        raise ParameterError("{scales} must be positive factors, e.g. 1 or 0.75 1 1.25", "scales")
    if cfg.height < 32:
        raise ParameterError(f"{{height}} {cfg.height} is too small; the network needs at least 32 rows", "height")


def pseudo_label(cfg: PseudoLabelConfig, out: Path, *, progress: bool = True) -> dict[str, Any]:
    """Label frames of ``cfg.videos`` with the teacher into ``out`` (a fresh or empty folder);
    returns the summary that is also written to ``out/pseudo.json``."""
    from lowlatseg.checkpoint import fingerprint, load_model

    check_config(cfg)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out} exists and is not an empty folder; give a new folder for the pseudo-labels")
    infos = check_videos(cfg.videos, max_gap_30=None)  # every file is opened, and an unreadable one named, before any work
    model = load_model(cfg.teacher)
    void = model.config.num_classes
    (out / "images").mkdir(parents=True)
    (out / "labels").mkdir()
    summary: dict[str, Any] = {"config": asdict(cfg), "teacher_fingerprint": fingerprint(model), "num_classes": void,
                               "void": void, "videos": [], "frames": 0}
    counts = np.zeros(void + 1, dtype=np.int64)
    listing = (out / f"{LIST_NAME}.txt").open("w")
    try:
        for info, stem in zip(infos, clip_names([i.path for i in infos])):
            entry: dict[str, Any] = {"video": info.path, "name": stem, "fps": info.fps, "step": frame_step(info.fps, cfg),
                                     "frames": 0}
            summary["videos"].append(entry)
            wanted = frame_indices(info.fps, info.frames, cfg)
            take = set(wanted.tolist()) if wanted is not None else None
            with VideoReader(info.path) as reader:
                bar = tqdm(total=None if wanted is None else len(wanted), desc=Path(info.path).name, unit="frame",
                           disable=not progress, leave=False)
                for i, frame in enumerate(reader):
                    if take is not None and not take:
                        break  # every chosen frame is labelled: the rest of the clip is not decoded
                    if (i not in take) if take is not None else (i % entry["step"] != 0):
                        continue
                    if take is not None:
                        take.discard(i)
                    if cfg.max_per_video and entry["frames"] >= cfg.max_per_video:
                        break
                    h, w = frame.shape[:2]
                    frame = cv2.resize(frame, (max(1, round(w * cfg.height / h)), cfg.height), interpolation=cv2.INTER_AREA)
                    lab = confident_labels(teacher_probabilities(model, frame, flip=cfg.flip, scales=cfg.scales),
                                           cfg.min_confidence, void)
                    name = f"{stem}_{i:06d}"
                    for path, data in ((out / "images" / f"{name}.png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)),
                                       (out / "labels" / f"{name}.png", lab)):
                        if not cv2.imwrite(str(path), data):
                            raise UserError(f"cannot write {path} (disk full or not writable?); the frames listed in "
                                            f"{out / (LIST_NAME + '.txt')} so far are complete")
                    listing.write(f"images/{name}.png labels/{name}.png\n")
                    listing.flush()
                    counts += np.bincount(lab.ravel(), minlength=void + 1)[: void + 1]
                    entry["frames"] += 1
                    bar.update(1)
                bar.close()
                problem = reader.error or reader.warning
            if problem:
                entry["problem"] = problem
                tqdm.write(f"{info.path}: {problem}; the {entry['frames']} frames labelled before it are kept")
    finally:
        listing.close()
        summary["frames"] = sum(e["frames"] for e in summary["videos"])
        total = max(int(counts.sum()), 1)
        summary["void_share"] = round(float(counts[void]) / total, 4)
        labelled = max(int(counts[:void].sum()), 1)
        summary["class_shares"] = [round(float(c) / labelled, 4) for c in counts[:void]]
        (out / f"{LIST_NAME}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
