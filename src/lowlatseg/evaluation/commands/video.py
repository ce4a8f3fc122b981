"""``lowlatseg eval video`` (the propagation benchmark on a labelled clip) and ``eval agreement``
(the same methods on unlabelled video, scored against the per-frame network)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from lowlatseg.checkpoint import DEFAULT_WEIGHTS
from lowlatseg.defaults import DEFAULT_DELAY_FRAMES
from lowlatseg.evaluation.commands.loading import load_propagation_of, open_clip
from lowlatseg.runtime.config import check_delay
from lowlatseg.scheduling.policies import check_interval


@dataclass(frozen=True)
class VideoEvalOptions:
    data: str
    split: str  # a split whose frames are one clip in time order
    interval: int  # keyframe every N frames
    weights: str | None = None
    propagation: str | None = None
    scheduler: str | None = None
    max_frames: int = 0  # 0: every frame of the clip
    scheduled: bool = True  # the adaptive-scheduled and low-latency rows too
    delay_frames: int = DEFAULT_DELAY_FRAMES  # low-latency row: frames before a keyframe's features are ready
    progress: bool = True


@dataclass(frozen=True)
class AgreementOptions:
    video: str
    interval: int
    size: str = "360"  # network input: HxW, a height keeping the aspect ratio, or native
    weights: str | None = None
    propagation: str | None = None
    max_frames: int = 0
    progress: bool = True


@dataclass(frozen=True)
class VideoEval:
    """Rows of the protocol (evaluation/video.py: one per method, as saved), what was evaluated
    (``source``: printed and saved in this order) and the thread count."""

    frames: int
    interval: int
    rows: list[dict[str, Any]]
    source: dict[str, Any]
    threads: int

    def to_json(self) -> dict[str, Any]:
        return {"frames": self.frames, "interval": self.interval, "rows": self.rows, **self.source, "threads": self.threads}


def eval_video(opts: VideoEvalOptions) -> VideoEval:
    """Every propagation method on a labelled clip, keyframe every ``interval`` frames, and (with
    ``scheduled``) adaptive scheduling and low-latency at the same keyframe rate."""
    from lowlatseg.data.transforms import to_tensor
    from lowlatseg.evaluation.commands.scheduled_rows import scheduled_rows
    from lowlatseg.evaluation.video import run_protocol, standard_rows

    check_delay(opts.delay_frames)
    check_interval(opts.interval)
    clip = open_clip(opts.data, opts.split, opts.weights, opts.propagation, opts.max_frames)
    ds, n, p = clip.ds, clip.n, clip.prop
    frames = ((to_tensor(ds[i][0]).unsqueeze(0), ds[i][1]) for i in range(n))
    bar = tqdm(total=n, desc=f"eval video N={opts.interval}", unit="frame", disable=not opts.progress)
    rows = standard_rows(p.config, p.adaptive, p.uniform, flow_guided=p.flow_guided, flow_residual=p.flow_residual)
    res = run_protocol(p.model, rows, frames, interval=opts.interval, num_classes=ds.labels.num_classes, progress=bar.update)
    bar.close()
    out_rows = list(res.rows)
    if opts.scheduled:
        out_rows += scheduled_rows(p.model, ds, n, opts.interval, propagation=opts.propagation,
                                   scheduler=opts.scheduler, delay_frames=opts.delay_frames, progress=opts.progress)
    h, w = ds[0][0].shape[:2]
    classes = list(ds.labels.classes)
    for r in out_rows:
        r["per_class_iou"] = dict(zip(classes, r["per_class_iou"]))
    source = {"data": str(opts.data), "split": opts.split, "resolution": f"{h}x{w}",
              "weights": str(opts.weights or DEFAULT_WEIGHTS), "propagation": str(opts.propagation or "bundled")}
    return VideoEval(res.frames, res.interval, out_rows, source, torch.get_num_threads())


def unlabelled_frames(reader: Any, hw: tuple[int, int], max_frames: int = 0) -> Iterator[tuple[torch.Tensor, None]]:
    """A video's frames as :func:`~lowlatseg.evaluation.video.run_protocol` takes them when the
    per-frame network is the reference: (1 x 3 x H x W at ``hw``, None); ``max_frames`` 0: all."""
    from lowlatseg.runtime import prepare

    for i, f in enumerate(reader):
        if max_frames and i >= max_frames:
            break
        yield prepare(f, hw), None


def eval_agreement(opts: AgreementOptions) -> VideoEval:
    """The methods of ``eval video`` on unlabelled video, scored against the per-frame network."""
    from lowlatseg.evaluation.video import run_protocol, standard_rows
    from lowlatseg.io.video import VideoReader
    from lowlatseg.runtime import network_size, parse_size

    check_interval(opts.interval)
    size_spec = parse_size(opts.size)
    p = load_propagation_of(opts.weights, opts.propagation)
    reader = VideoReader(opts.video)
    hw = network_size((reader.info.height, reader.info.width), size_spec)
    max_frames = opts.max_frames

    total = min(reader.info.frames, max_frames) if max_frames and reader.info.frames else (max_frames or reader.info.frames or None)
    bar = tqdm(total=total, desc=f"agreement N={opts.interval}", unit="frame", disable=not opts.progress)
    try:
        rows = standard_rows(p.config, p.adaptive, p.uniform, flow_guided=p.flow_guided, flow_residual=p.flow_residual)
        res = run_protocol(p.model, rows, unlabelled_frames(reader, hw, max_frames), interval=opts.interval,
                           num_classes=p.model.config.num_classes, progress=bar.update)
    finally:
        bar.close()
        reader.close()
    source = {"video": str(opts.video), "resolution": f"{hw[0]}x{hw[1]}", "fps": reader.info.fps,
              "weights": str(opts.weights or DEFAULT_WEIGHTS), "propagation": str(opts.propagation or "bundled"),
              "reference": "per-frame network labels"}
    return VideoEval(res.frames, res.interval, res.rows, source, torch.get_num_threads())
