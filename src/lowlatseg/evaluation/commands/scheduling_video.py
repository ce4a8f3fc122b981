"""``lowlatseg eval scheduling --video FILE ...``: keyframe rules on long unlabelled video,
scored by agreement with the per-frame network, each rule against ``fixed`` with a paired block
bootstrap interval (evaluation/long_video.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from lowlatseg.checkpoint import DEFAULT_WEIGHTS
from lowlatseg.defaults import DEFAULT_PROPAGATION_METHOD
from lowlatseg.errors import ParameterError
from lowlatseg.evaluation.commands.scheduling import check_intervals

DEFAULT_SIZE = "360"
DEFAULT_BOOTSTRAP = 1000


def _check_length(video: str, frames: int, longest: int, what: str) -> None:
    """``what``: how the frames were counted, parameters written ``{max_frames}``."""
    if frames < longest:
        raise ParameterError(f"{video} has {frames} frames{what}, fewer than the largest {{intervals}} value ({longest}); "
                             "drop it or choose shorter intervals", "intervals", "max_frames")


@dataclass(frozen=True)
class VideoSchedulingOptions:
    videos: tuple[str, ...]
    intervals: tuple[int, ...] = (5, 8)
    max_gap: int = 12
    size: str = DEFAULT_SIZE  # network input: HxW, a height or native
    weights: str | None = None
    propagation: str | None = None
    scheduler: str | None = None
    propagation_method: str = DEFAULT_PROPAGATION_METHOD  # what non-key frames propagate with, as the runtime's
    progress: bool = True
    max_frames: int = 0  # > 0: the first frames of each video only
    chance_samples: int = 2000
    bootstrap: int = DEFAULT_BOOTSTRAP  # resamples of the paired block bootstrap
    seed: int = 0  # of the bootstrap and the chance schedules


@dataclass(frozen=True)
class VideoSchedulingEval:
    """The fields of the JSON file; ``intervals``: per interval, evaluation/long_video.py's
    :func:`~lowlatseg.evaluation.long_video.score_interval` (pooled rows, then each video's)."""

    weights: str
    propagation: str
    propagation_method: str
    scheduler: str
    shipped_rule: str
    deviation_target: str  # what the predictor learned and the oracles replay (scheduling/targets.py)
    size: str
    max_gap: int
    max_frames: int
    seed: int
    bootstrap: int
    block_seconds: float
    chance_samples: int
    threads: int
    intervals: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"reference": "per-frame network labels at the network input size", "weights": self.weights,
                "propagation": self.propagation, "propagation_method": self.propagation_method, "scheduler": self.scheduler, "shipped_rule": self.shipped_rule,
                "deviation_target": self.deviation_target, "size": self.size, "max_gap": self.max_gap, "max_frames": self.max_frames, "seed": self.seed,
                "bootstrap": self.bootstrap, "block_seconds": self.block_seconds, "chance_samples": self.chance_samples,
                "threads": self.threads, "intervals": self.intervals}


def eval_video_scheduling(opts: VideoSchedulingOptions) -> VideoSchedulingEval:
    """Every rule at exactly the fixed intervals' keyframe counts on each video (its own stream)
    and pooled over all of them; mIoU against the per-frame network's labels at the network input
    size. See :func:`~lowlatseg.evaluation.long_video.score_interval` for the rows."""
    from lowlatseg.evaluation import long_video as lv
    from lowlatseg.evaluation.commands.loading import load_propagation_of
    from lowlatseg.io.video import VideoReader
    from lowlatseg.nn.inference import for_inference
    from lowlatseg.runtime import network_size, parse_size, prepare
    from lowlatseg.scheduling.weights import load_scheduler

    o = opts
    videos, intervals, max_frames = o.videos, o.intervals, o.max_frames
    if not videos:
        raise ParameterError("give at least one {video} FILE", "video")
    check_intervals(intervals, o.max_gap)
    longest = max(intervals)
    if o.bootstrap < 1:
        raise ParameterError(f"{{bootstrap}} {o.bootstrap} is not valid; it is a number of resamples, at least 1 "
                             "(e.g. 1000)", "bootstrap")
    spec = parse_size(o.size)
    for v in videos:  # every input checked before the long part starts
        with VideoReader(v) as reader:
            stated = reader.info.frames if not max_frames else min(max_frames, reader.info.frames or max_frames)
        if stated:
            _check_length(v, stated, longest, "" if not max_frames else f" to use ({{max_frames}} {max_frames})")
    prop = load_propagation_of(o.weights, o.propagation)
    base, propagator = prop.model, prop.learned.runtime_method(o.propagation_method)
    predictor, defaults = load_scheduler(o.scheduler, base)
    # the inference copies the runtime and `eval agreement` run (BatchNorm folded, channels-last)
    model, predictor = for_inference(base), for_inference(predictor)
    method = for_inference(propagator) if isinstance(propagator, nn.Module) else propagator

    tables = []
    for v in videos:
        with VideoReader(v) as reader:
            hw = network_size((reader.info.height, reader.info.width), spec)

            def frames(r: VideoReader = reader, hw: tuple[int, int] = hw) -> Iterator[torch.Tensor]:
                for i, f in enumerate(r):
                    if max_frames and i >= max_frames:
                        break
                    yield prepare(f, hw)

            total = min(reader.info.frames, max_frames) if max_frames and reader.info.frames else (max_frames or reader.info.frames or None)
            bar = tqdm(total=total, desc=Path(v).name, unit="frame", disable=not o.progress)
            try:
                table = lv.stream_pair_table(model, method, predictor, frames(), num_classes=base.config.num_classes,
                                             max_gap=o.max_gap, progress=bar.update, weights=defaults.target_weights())
            finally:
                bar.close()
            if reader.error or reader.warning:
                tqdm.write(f"lowlatseg: warning: {v}: {reader.error or reader.warning}; scoring the {table.frames} frames "
                           "before it", file=sys.stderr)
            _check_length(v, table.frames, longest, " that decode")
            tables.append(lv.VideoTable(str(v), reader.info.fps, f"{hw[0]}x{hw[1]}", table))

    return VideoSchedulingEval(
        weights=str(o.weights or DEFAULT_WEIGHTS), propagation=str(o.propagation or "bundled"),
        propagation_method=o.propagation_method, scheduler=str(o.scheduler or "bundled"), shipped_rule=defaults.rule,
        deviation_target=defaults.target, size=o.size, max_gap=o.max_gap,
        max_frames=max_frames, seed=o.seed, bootstrap=o.bootstrap, block_seconds=lv.BLOCK_SECONDS,
        chance_samples=o.chance_samples, threads=torch.get_num_threads(),
        intervals=[lv.score_interval(tables, n, shipped_rule=defaults.rule, bootstrap=o.bootstrap, seed=o.seed,
                                     chance_samples=o.chance_samples) for n in intervals],
    )
