"""``lowlatseg eval tradeoff``: mean / max latency against mIoU for every method and mode
(the points: evaluation/tradeoff.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lowlatseg.checkpoint import DEFAULT_WEIGHTS, load_model
from lowlatseg.defaults import DEFAULT_PROPAGATION_METHOD, PROPAGATION_METHODS
from lowlatseg.evaluation.verdict import verdicts
from lowlatseg.errors import ParameterError, UserError
from lowlatseg.evaluation.commands.loading import open_clip
from lowlatseg.nn.splitnet import SplitSegNet


@dataclass(frozen=True)
class TradeoffOptions:
    data: str
    split: str
    intervals: tuple[int, ...] = (2, 3, 5, 8)
    fps: float = 15.0  # stream rate of the latency runs (0: as fast as possible)
    weights: str | None = None
    propagation: str | None = None
    scheduler: str | None = None
    threads: int = 2
    delay_frames: int | None = None  # low-latency accuracy: frames before keyframe features are ready (None: as late as live)
    progress: bool = True
    max_frames: int = 0
    latency_repeat: int = 3  # latency on the clip played this many times (forwards, backwards, ...)
    rounds: int = 1  # live passes of every point, the points in turn
    ladder: tuple[str, ...] | None = None  # WEIGHTS or WEIGHTS@HxW per-frame points; None: see ladder_points
    low_latency_sizes: tuple[str, ...] = ()  # HxW: more low-latency points of the model, at these input sizes
    propagation_method: str = DEFAULT_PROPAGATION_METHOD  # what adaptive-scheduled and low-latency propagate with
    low_latency_methods: tuple[str, ...] = ()  # more low-latency points, propagating with these methods
    spare_keyframes: bool = True  # low-latency as the runtime runs it by default; also its points without them


@dataclass(frozen=True)
class TradeoffEval:
    data: str
    split: str
    frames: int
    resolution: str
    threads: int
    stream_fps: float
    delay_frames: int | None
    latency_repeat: int
    rounds: int
    weights: str
    ladder: list[dict[str, str]]  # model, size, weights of each ladder point
    points: list[dict[str, Any]]  # as saved: evaluation/tradeoff.py

    def to_json(self) -> dict[str, Any]:
        return {"data": self.data, "split": self.split, "frames": self.frames, "resolution": self.resolution,
                "threads": self.threads, "stream_fps": self.stream_fps, "delay_frames": self.delay_frames,
                "latency_repeat": self.latency_repeat, "rounds": self.rounds, "weights": self.weights, "ladder": self.ladder,
                "points": self.points, "verdicts": verdicts(self.points)}


def eval_tradeoff(opts: TradeoffOptions) -> TradeoffEval:
    """``ladder``: per-frame points besides the model's own, each ``WEIGHTS`` (at the clip's size)
    or ``WEIGHTS@HxW``; None: the model at ``LADDER_SIZES``, and every other bundled network at the
    clip's size and at ``LADDER_SIZES`` (see :func:`ladder_points`): a user may pick any of them
    at any size."""
    from lowlatseg.evaluation.tradeoff import tradeoff_points
    from lowlatseg.propagation.methods import ImageDifference
    from lowlatseg.scheduling.weights import load_scheduler

    for name in (opts.propagation_method, *opts.low_latency_methods):
        if name not in PROPAGATION_METHODS:
            raise ParameterError(f"propagation method {name!r} is not one of {', '.join(PROPAGATION_METHODS)}")
    if any(n < 1 for n in opts.intervals):
        raise ParameterError("every {intervals} value must be at least 1", "intervals")
    if opts.delay_frames is not None and opts.delay_frames < 1:
        raise ParameterError(f"{{delay_frames}} {opts.delay_frames} is not valid; a keyframe is usable one frame after "
                             "it is chosen at the earliest", "delay_frames")
    ll_sizes = list(dict.fromkeys(_hw(text, "low_latency_sizes") for text in opts.low_latency_sizes))
    clip = open_clip(opts.data, opts.split, opts.weights, opts.propagation, opts.max_frames)
    ds, n, p = clip.ds, clip.n, clip.prop
    model = p.model
    predictor, defaults = load_scheduler(opts.scheduler, model)
    images = [ds[i][0] for i in range(n)]
    labels = [ds[i][1] for i in range(n)]
    torch.set_num_threads(opts.threads)
    members = ladder_points(opts.ladder, model, opts.weights, clip_hw=images[0].shape[:2])
    guided, residual = p.flow_guided, p.flow_residual
    runtime_method = p.learned.runtime_method(opts.propagation_method)
    more = [p.learned.runtime_method(name) for name in dict.fromkeys(opts.low_latency_methods) if name != opts.propagation_method]
    points = tradeoff_points(model, p.adaptive, p.uniform, ImageDifference(p.config), predictor, images, labels,
                             rule=defaults.rule, num_classes=ds.labels.num_classes, intervals=opts.intervals,
                             fps=opts.fps, threads=opts.threads, delay_frames=opts.delay_frames, progress=opts.progress,
                             latency_repeat=opts.latency_repeat, ladder=members, flow_guided=guided, flow_residual=residual,
                             scheduled_method=runtime_method,
                             low_latency_sizes=[hw for hw in ll_sizes if hw != tuple(images[0].shape[:2])],
                             low_latency_methods=more, rounds=opts.rounds, spare_keyframes=opts.spare_keyframes)
    h, w = images[0].shape[:2]
    return TradeoffEval(
        data=str(opts.data), split=opts.split, frames=n, resolution=f"{h}x{w}", threads=opts.threads,
        stream_fps=opts.fps, delay_frames=opts.delay_frames, latency_repeat=opts.latency_repeat, rounds=opts.rounds,
        weights=str(opts.weights or DEFAULT_WEIGHTS),
        ladder=[{"model": m.name, "size": f"{m.size[0]}x{m.size[1]}", "weights": m.weights} for m in members],
        points=points,
    )


def ladder_points(specs: tuple[str, ...] | None, model: SplitSegNet, weights: str | None, *,
                  clip_hw: tuple[int, int]) -> list[Any]:
    """The per-frame ladder of ``eval tradeoff`` besides the model's own point (see eval_tradeoff)."""
    from lowlatseg.checkpoint import LADDER_SIZES, bundled_models
    from lowlatseg.evaluation.tradeoff import LadderPoint

    hw = (int(clip_hw[0]), int(clip_hw[1]))
    own = Path(weights).resolve() if weights else DEFAULT_WEIGHTS.resolve()
    out: list[LadderPoint] = []
    if specs is None:
        smaller = [size for size in LADDER_SIZES if size != hw]
        out += [LadderPoint(model.config.arch, model, size, str(weights or DEFAULT_WEIGHTS)) for size in smaller]
        for path in bundled_models():
            if path.resolve() != own:
                net = load_model(path)
                out += [LadderPoint(net.config.arch, net, size, str(path)) for size in (hw, *smaller)]
        return out
    seen = {(own, hw)}  # the model's own point is always measured: a spec naming it, or a repeated spec, adds nothing
    for spec in specs:
        path_text, _, size_text = spec.partition("@")
        size = _hw(size_text, "ladder", spec) if size_text else hw
        key = (Path(path_text).resolve(), size)
        if key in seen:
            continue
        seen.add(key)
        try:
            net = load_model(path_text)
        except UserError as e:
            raise ParameterError(f"{{ladder}} {spec} is not a model file ({e})", "ladder") from None
        out.append(LadderPoint(net.config.arch, net, size, path_text))
    return out


def _hw(text: str, param: str, spec: str | None = None) -> tuple[int, int]:
    """``HxW`` -> (H, W); anything else is refused with a sentence naming ``{param}``."""
    from lowlatseg.runtime import parse_size

    try:
        parsed = parse_size(text)
    except ParameterError:
        parsed = None
    if not isinstance(parsed, tuple):
        what = spec if spec is not None else text
        example = f"{spec.partition('@')[0]}@288x384" if spec is not None else "288x384"
        raise ParameterError(f"{{{param}}} {what}: give the size as HxW (e.g. {example})", param)
    return parsed

