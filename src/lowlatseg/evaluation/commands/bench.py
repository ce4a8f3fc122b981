"""``lowlatseg bench`` (every mode fed the same video as a live stream) and ``bench split``
(the time of low, high and head)."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from lowlatseg.checkpoint import DEFAULT_WEIGHTS, load_model
from lowlatseg.defaults import DEFAULT_PROPAGATION_METHOD, MAX_DELAY_FRAMES, MODES
from lowlatseg.errors import ParameterError
from lowlatseg.evaluation.latency import WARMUP_FRAMES
from lowlatseg.scheduling.policies import check_interval



@dataclass(frozen=True)
class LatencyBenchOptions:
    video: str
    size: str = "360x480"  # network input HxW
    fps: float | None = None  # stream rate; None: the video's own; 0: as fast as possible
    modes: tuple[str, ...] = MODES  # every mode, in this order
    interval: int = 5  # keyframe interval of the fixed mode
    threshold: float | None = None  # adaptive, instant rule
    budget: float | None = None  # adaptive, accumulated rule (neither: the scheduler's default)
    weights: str | None = None
    propagation: str | None = None
    scheduler: str | None = None
    threads: int = 2
    max_frames: int = 0
    warmup: int | None = None  # frames run before the clock starts (None: WARMUP_FRAMES)
    repeat: int = 1  # the clip played this many times (forwards, backwards, ...)
    progress: bool = True
    worker: str = "sliced"  # where live low-latency runs a keyframe's high: sliced | parallel
    max_delay: int = MAX_DELAY_FRAMES  # sliced worker: features ready at most this many frames late
    spare_keyframes: bool = True  # low-latency: a keyframe on every frame while the stream leaves time for high
    rounds: int = 1  # the modes take turns on this many consecutive parts of the frames
    propagation_method: str = DEFAULT_PROPAGATION_METHOD


@dataclass(frozen=True)
class LatencyBench:
    video: str
    resolution: str
    threads: int
    fps_input: float  # the stream rate used (0: as fast as possible)
    worker: str
    max_delay: int | None  # sliced worker only
    spare_keyframes: bool  # low-latency's spare keyframes (runtime/stream.py)
    frames: int
    repeat: int
    rounds: int
    interval: int
    weights: str
    warmup: int
    rows: list[dict[str, Any]]  # per mode: evaluation/latency.py's live_summary, with latencies_ms (not saved)

    def to_json(self) -> dict[str, Any]:
        return {"video": self.video, "resolution": self.resolution, "threads": self.threads, "fps_input": self.fps_input,
                "worker": self.worker, "max_delay": self.max_delay, "spare_keyframes": self.spare_keyframes,
                "frames": self.frames, "repeat": self.repeat,
                "rounds": self.rounds, "interval": self.interval, "weights": self.weights,
                "rows": [{k: v for k, v in r.items() if k != "latencies_ms"} for r in self.rows]}


def _decode(video: str, size: str, max_frames: int) -> tuple[list[Any], tuple[int, int], float]:
    """All frames of a video, resized to the network input size (before any clock starts)."""
    import cv2

    from lowlatseg.io.video import VideoReader
    from lowlatseg.runtime import network_size, parse_size

    spec = parse_size(size)
    with VideoReader(video) as reader:
        hw = network_size((reader.info.height, reader.info.width), spec)
        frames: list[np.ndarray] = []
        for f in reader:
            if max_frames and len(frames) >= max_frames:
                break
            frames.append(f if f.shape[:2] == hw else cv2.resize(f, (hw[1], hw[0]), interpolation=cv2.INTER_AREA))
        fps = reader.info.fps
        if reader.error or reader.warning:
            tqdm.write(f"lowlatseg: warning: {video}: {reader.error or reader.warning}; measuring the {len(frames)} frames "
                       "before it", file=sys.stderr)
    return frames, hw, fps


def _bounds(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` consecutive (start, end) ranges covering 0..n, as equal as possible."""
    cuts = [round(i * n / parts) for i in range(parts + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


def bench_latency(opts: LatencyBenchOptions) -> LatencyBench:
    """Every mode on the same frames, fed as a live stream.

    ``rounds``: the frames are cut into this many consecutive parts, and every mode runs on
    each part in turn (round 1: the modes in order, round 2: in reverse order, ...), each part a
    stream of its own with its own warm-up and a newly built runtime. On a machine whose speed
    drifts, the modes then share its fast and slow phases, so their ratios compare like with
    like; with 1 (the default) each mode is one long stream, run one after the other, which is
    what drift and memory growth need."""
    from lowlatseg.evaluation.latency import LiveRun, feed_live, live_summary
    from lowlatseg.runtime.build import build_runtime
    from lowlatseg.runtime.config import RuntimeConfig, executor_spec

    o = opts
    check_interval(o.interval)
    if o.fps is not None and (not math.isfinite(o.fps) or o.fps < 0):
        raise ParameterError(f"{{fps}} {o.fps} is not valid; give the stream rate in frames per second, or 0 for as fast "
                             "as possible", "fps")
    frames, hw, video_fps = _decode(o.video, o.size, o.max_frames)
    if o.repeat > 1:  # a long stream: the clip played forwards and backwards in turn (no jump at the seams)
        clip = frames
        frames = [f for r in range(o.repeat) for f in (clip if r % 2 == 0 else clip[::-1])]
    warmup = WARMUP_FRAMES if o.warmup is None else o.warmup
    if warmup < 0:
        raise ParameterError(f"{{warmup}} {warmup} is not valid; give a number of frames >= 0", "warmup")
    if len(frames) <= warmup:
        raise ParameterError(f"{o.video} has {len(frames)} frames; the benchmark needs more than the {warmup} warm-up "
                             "frames: lower {warmup}, or play the clip several times with {repeat}", "warmup", "repeat")
    if o.rounds < 1:
        raise ParameterError(f"{{rounds}} {o.rounds} is not valid; give a number of rounds >= 1", "rounds")
    parts = [frames[a:b] for a, b in _bounds(len(frames), o.rounds)]
    if min(len(p) for p in parts) <= warmup:
        raise ParameterError(f"{{rounds}} {o.rounds} cuts the {len(frames)} frames into parts of "
                             f"{min(len(p) for p in parts)}, which leaves nothing after the {warmup} warm-up frames of "
                             "each part: use fewer rounds, or a longer stream with {repeat}", "rounds", "repeat")
    if o.fps is None and not video_fps:
        raise ParameterError(f"{o.video} does not say its frame rate; pass {{fps}} (0 for as fast as possible)", "fps")
    rate = video_fps if o.fps is None else o.fps
    model = load_model(o.weights)
    runs: dict[str, list[LiveRun]] = {m: [] for m in o.modes}
    bar = tqdm(total=sum(len(p) - warmup for p in parts) * len(o.modes), desc="bench", unit="frame", disable=not o.progress)
    for k, part in enumerate(parts):
        for mode in o.modes if k % 2 == 0 else o.modes[::-1]:
            torch.set_num_threads(o.threads)
            rt = build_runtime(model, RuntimeConfig(
                mode=mode, propagation=o.propagation, scheduler=o.scheduler, threshold=o.threshold, budget=o.budget,
                interval=o.interval if mode == "fixed" else None, size=hw, threads=o.threads,
                executor=executor_spec(o.worker, o.max_delay), propagation_method=o.propagation_method,
                spare_keyframes=o.spare_keyframes))
            with rt:
                runs[mode].append(feed_live(rt, part, fps=rate, warmup=warmup, on_frame=bar.update))
    bar.close()
    rows = [{"mode": mode, "threads": o.threads, **live_summary(runs[mode])} for mode in o.modes]
    torch.set_num_threads(o.threads)
    return LatencyBench(video=str(o.video), resolution=f"{hw[0]}x{hw[1]}", threads=o.threads, fps_input=rate,
                        worker=o.worker, max_delay=o.max_delay if o.worker == "sliced" else None,
                        spare_keyframes=o.spare_keyframes, frames=len(frames),
                        repeat=o.repeat, rounds=o.rounds, interval=o.interval, weights=str(o.weights or DEFAULT_WEIGHTS),
                        warmup=warmup, rows=rows)


@dataclass(frozen=True)
class SplitBenchOptions:
    size: str = "360x480"
    weights: str | None = None
    repeats: int = 20


@dataclass(frozen=True)
class SplitBench:
    resolution: str
    threads: int
    weights: str
    repeats: int
    ms: dict[str, float]  # median ms of low, high, head, whole

    def to_json(self) -> dict[str, Any]:
        return {"resolution": self.resolution, "threads": self.threads, "weights": self.weights, "ms": self.ms,
                "fraction_of_whole": {k: round(self.ms[k] / self.ms["whole"], 3) for k in ("low", "high", "head")}}


def bench_split(opts: SplitBenchOptions) -> SplitBench:
    """Median time of low, high, head (with the labels at the input size) and the whole network,
    as the runtime runs them (the inference copy of the network, channels-last input,
    :func:`upsampled_labels`), interleaved so machine noise hits all alike."""
    import time

    from lowlatseg.nn.inference import for_inference
    from lowlatseg.nn.labels import upsampled_labels
    from lowlatseg.runtime import parse_size
    from lowlatseg.runtime.steady import keep_freed_memory

    keep_freed_memory()  # as every runtime does (runtime/steady.py)
    spec = parse_size(opts.size)
    if not isinstance(spec, tuple):
        raise ParameterError(f"{{size}} {opts.size!r}: give HxW, e.g. 360x480", "size")
    model = for_inference(load_model(opts.weights))
    x = torch.rand(1, 3, *spec).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        f_low = model.low(x)
        f_high = model.high(f_low)

        def whole() -> torch.Tensor:
            f = model.low(x)
            return upsampled_labels(model.head(model.high(f), f), spec, dtype=torch.uint8)

        parts = {"low": lambda: model.low(x), "high": lambda: model.high(f_low),
                 "head": lambda: upsampled_labels(model.head(f_high, f_low), spec, dtype=torch.uint8), "whole": whole}
        for fn in parts.values():
            fn()
        times: dict[str, list[float]] = {k: [] for k in parts}
        for _ in range(opts.repeats):
            for k, fn in parts.items():
                t0 = time.perf_counter()
                fn()
                times[k].append((time.perf_counter() - t0) * 1000)
    med = {k: round(float(np.median(v)), 2) for k, v in times.items()}
    return SplitBench(f"{spec[0]}x{spec[1]}", torch.get_num_threads(), str(opts.weights or DEFAULT_WEIGHTS), opts.repeats, med)
