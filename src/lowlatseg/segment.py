"""``lowlatseg segment``: a video in, an overlay video (and optionally label PNGs and stats) out.

Whatever happens mid-way (a corrupt frame, a stalled stream, Ctrl-C, SIGTERM, an error), the
frames already written stay in a valid video, and the stats file records the frames done so far
and why the run stopped early (``stopped_early``; also a file that ends cleanly well before its
header's duration, which is a warning, not an error).

The work overlaps on three threads (lowlatseg/pipeline.py): a reader decodes and resizes each
frame to the network's size, this thread runs the runtime, a writer blends the overlay at the
input's size, encodes it and writes the label PNGs. The stats give the runtime's time per frame
(``latency_ms``) beside the whole run's rate (``wall_seconds``, ``end_to_end_fps``).
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from lowlatseg.checkpoint import DEFAULT_WEIGHTS, load_model
from lowlatseg.classes import CAMVID, LABEL_SETS
from lowlatseg.errors import UserError, WorkerError
from lowlatseg.defaults import DEFAULT_PROPAGATION_METHOD, MAX_DELAY_FRAMES
from lowlatseg.io.video import VideoReader, VideoWriter, check_preset, check_video_out
from lowlatseg.overlay import blend_upsampled
from lowlatseg.pipeline import Pipeline
from lowlatseg.runtime import network_size, parse_size
from lowlatseg.runtime.build import build_runtime
from lowlatseg.runtime.config import RuntimeConfig, executor_spec
from lowlatseg.runtime.frames import FrameResult
from lowlatseg.scheduling.policies import rule_fields

# libx264's preset for the overlay: superfast takes less CPU time than veryfast for a larger file
# at the same crf (about the same quality); on a 2-core machine encoding 1080p competes with the
# segmentation for the same cores, which get what it frees (--preset to change it)
FILE_PRESET = "superfast"
PIPELINE_DEPTH = 3  # frames waiting between two threads, at most (decoded; segmented)


@dataclass(frozen=True)
class SegmentOptions:
    source: str  # video file or FFmpeg URL
    out: Path  # overlay video (.mp4 / .mkv)
    labels_dir: Path | None = None  # one PNG of class ids per frame, at the input's size
    stats: Path | None = None  # JSON: per-frame latency, frames, resolution, threads
    weights: Path | None = None  # None: the bundled default model
    mode: str = "low-latency"  # per-frame | fixed | adaptive | low-latency
    interval: int | None = None  # fixed keyframe interval (fixed mode; low-latency with a fixed schedule)
    threshold: float | None = None  # adaptive scheduling, instant rule: deviation threshold in [0, 1]
    budget: float | None = None  # adaptive scheduling, accumulated rule (neither: the scheduler's default)
    propagation: Path | None = None  # None: bundled propagation weights
    scheduler: Path | None = None  # None: bundled scheduler weights
    size: str = "360"  # network input: 'HxW', a height keeping the aspect ratio, or 'native'
    max_frames: int = 0  # 0: the whole video
    alpha: float = 0.5  # label colour opacity in the overlay
    worker: str = "sliced"  # low-latency: where a keyframe's high runs (runtime/config.py: executor_spec)
    max_delay: int = MAX_DELAY_FRAMES  # sliced worker, frames faster than answered: features at most this late
    spare_keyframes: bool = True  # low-latency: a keyframe on every frame while the stream leaves time for high
    propagation_method: str = DEFAULT_PROPAGATION_METHOD  # adaptive (the paper's), flow-guided, flow-residual or flow
    preset: str = FILE_PRESET  # libx264 speed preset of the overlay video
    progress: bool = True


def segment_video(opts: SegmentOptions) -> dict[str, Any]:
    """Segments every frame; returns the stats summary (also written to ``opts.stats``)."""
    if not 0.0 <= opts.alpha <= 1.0:
        raise UserError(f"--alpha {opts.alpha} is outside [0, 1]; pick an opacity such as 0.5")
    check_preset(opts.preset)
    size = parse_size(opts.size)
    _check_writable(opts.stats, "--stats")
    _check_writable(opts.out, "--out")
    check_video_out(opts.out)
    _check_distinct(opts)
    reader = VideoReader(opts.source)  # bad input fails here, before any model is loaded
    try:
        model = load_model(opts.weights)
        labelset = LABEL_SETS.get("cityscapes" if model.config.num_classes == 19 else "camvid", CAMVID)
        # low-latency: every thread for each frame, a keyframe's high in slices between frames
        # (--worker parallel: on its own thread, at the same time; docs/runtime.md)
        runtime = build_runtime(model, RuntimeConfig(
            mode=opts.mode, propagation=opts.propagation, scheduler=opts.scheduler, interval=opts.interval,
            threshold=opts.threshold, budget=opts.budget, size=size, threads=torch.get_num_threads(),
            executor=executor_spec(opts.worker, opts.max_delay), propagation_method=opts.propagation_method,
            spare_keyframes=opts.spare_keyframes))
        if opts.labels_dir is not None:
            try:
                opts.labels_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UserError(f"cannot create --labels folder {opts.labels_dir} ({e.strerror}); choose another path") from None
    except BaseException:
        reader.close()
        raise
    info = reader.info
    net_hw = network_size((info.height, info.width), size)
    try:
        writer = VideoWriter(opts.out, fps=info.fps, width=info.width, height=info.height, preset=opts.preset)
    except BaseException:
        reader.close()
        runtime.close()
        raise
    latencies: list[float] = []
    keyframes: list[bool] = []
    sources: list[int] = []
    total = info.frames if not opts.max_frames else min(info.frames or opts.max_frames, opts.max_frames)
    bar = tqdm(total=total or None, unit="frame", disable=not opts.progress, desc="segment")
    out_hw = (info.height, info.width)

    def read() -> Iterator[tuple[np.ndarray, np.ndarray]]:  # the reader thread: decode, resize to the network's size
        # islice: with --max-frames, not one frame past the limit is decoded (nor can fail)
        hw: tuple[int, int] | None = None
        for frame in itertools.islice(reader, opts.max_frames or None):
            # the network size of the first frame, as the runtime would fix it; a stream that
            # changes resolution mid-way is resized to it (and the runtime, given frames of
            # that size, resizes nothing: the same pixels as when it resized them itself)
            hw = hw or network_size(frame.shape[:2], size)
            small = frame if frame.shape[:2] == hw else cv2.resize(frame, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
            yield frame, small

    def compute(item: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, FrameResult, float]:  # this thread
        t0 = time.perf_counter()
        result = runtime.step(item[1])
        return item[0], result, (time.perf_counter() - t0) * 1000

    def write(item: tuple[np.ndarray, FrameResult, float]) -> None:  # the writer thread: overlay, encode, PNG
        frame, result, latency = item
        # the overlay at the output's size (a stream that changes resolution mid-way: its first
        # frame's), the label PNG at the frame's own
        base = frame if frame.shape[:2] == out_hw else cv2.resize(frame, out_hw[::-1], interpolation=cv2.INTER_AREA)
        writer.write(blend_upsampled(base, result.labels, labelset, alpha=opts.alpha))
        # recorded once the frame is in the video: the stats always count the frames written
        latencies.append(latency)
        keyframes.append(result.is_keyframe)
        sources.append(result.keyframe_index)
        bar.update(1)
        if opts.labels_dir is not None:
            _write_labels(opts.labels_dir / f"frame_{result.index:06d}.png", result.labels, frame.shape[:2])

    t_start = time.perf_counter()
    stopped = None
    try:
        Pipeline(read(), compute, write, depth=PIPELINE_DEPTH).run()
    except BaseException as e:
        stopped = _stop_reason(e)
        raise
    finally:
        bar.close()
        writer.close()
        reader.close()
        runtime.close()
        summary = _summary(opts, info, net_hw, latencies, keyframes, sources, time.perf_counter() - t_start,
                           reader.error or reader.warning or stopped, runtime.policy)
        if opts.stats is not None:
            tmp = opts.stats.with_suffix(opts.stats.suffix + ".tmp")
            tmp.write_text(json.dumps(summary, indent=1))
            os.replace(tmp, opts.stats)
    done = f"the {len(latencies)} frames read before that are segmented in {opts.out}" + (f" (stats: {opts.stats})" if opts.stats else "")
    if reader.error:  # the input broke off or stalled: what was read is written, and the caller is told
        raise InputEndedEarly(f"{opts.source}: {reader.error}; {done}", summary)
    if reader.warning:  # ended cleanly, but short of its header's duration: say so, not an error
        tqdm.write(f"lowlatseg: warning: {opts.source}: {reader.warning}; {done}", file=sys.stderr)
    return summary


class InputEndedEarly(UserError):
    """The input stopped before its end (decoding error, truncated file, stalled stream); every
    frame read before it was segmented and written. ``summary``: the stats of those frames."""

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


def _stop_reason(e: BaseException) -> str:
    """What the stats say when the run stops on ``e`` (Ctrl-C, SIGTERM, bad input, a worker crash, a bug)."""
    if isinstance(e, KeyboardInterrupt):
        return str(e) or "interrupted by the user"
    if isinstance(e, (UserError, WorkerError)):
        return str(e)
    return f"stopped by an internal error: {type(e).__name__}: {e}"


def _summary(opts: SegmentOptions, info: Any, net_hw: tuple[int, int], lat: list[float], keys: list[bool],
             sources: list[int], wall: float, stopped: str | None, policy: Any = None) -> dict[str, Any]:
    arr = np.array(lat) if lat else np.zeros(1)
    return {
        # the keyframe policy as it ran: name, and for adaptive its rule and threshold / budget
        "policy": {"name": getattr(policy, "name", None), "rule": rule_fields(policy)["rule"] if policy is not None else None,
                   "value": getattr(policy, "threshold", None), "interval": getattr(policy, "interval", None)},
        "input": str(opts.source),
        "output": str(opts.out),
        "mode": opts.mode,
        "worker": opts.worker if opts.mode == "low-latency" else None,
        "propagation_method": opts.propagation_method if opts.mode != "per-frame" else None,
        "max_delay": opts.max_delay if opts.mode == "low-latency" and opts.worker == "sliced" else None,
        "spare_keyframes": opts.spare_keyframes if opts.mode == "low-latency" else None,
        "interval": opts.interval,
        "threshold": opts.threshold,
        "budget": opts.budget,
        "weights": str(opts.weights or DEFAULT_WEIGHTS),
        "frames": len(lat),
        "input_resolution": f"{info.height}x{info.width}",
        "resolution": f"{net_hw[0]}x{net_hw[1]}",
        "fps_input": info.fps,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, torch {torch.__version__}",
        # runtime.step's own time per frame, the frame already at the network's size (resized on the reader thread)
        "latency_ms": {
            "mean": round(float(arr.mean()), 2),
            "p50": round(float(np.percentile(arr, 50)), 2),
            "p95": round(float(np.percentile(arr, 95)), 2),
            "max": round(float(arr.max()), 2),
        },
        "keyframes": int(sum(keys)),
        "keyframe_fraction": round(sum(keys) / len(keys), 4) if keys else 0.0,
        "wall_seconds": round(wall, 3),  # the whole run: decoding, segmenting, overlay, encoding, PNGs
        "end_to_end_fps": round(len(lat) / wall, 2) if wall > 0 else 0.0,
        "preset": opts.preset,
        "stopped_early": stopped,
        "per_frame": [
            {"frame": i, "latency_ms": round(v, 2), "keyframe": k, "labels_from": src}
            for i, (v, k, src) in enumerate(zip(lat, keys, sources))
        ],
    }


def _write_labels(path: Path, labels: np.ndarray, hw: tuple[int, int]) -> None:
    """One frame's class ids as a PNG at ``hw`` (upsampled, nearest, from the network's size)."""
    if labels.shape != hw:
        labels = cv2.resize(labels, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)
    if not cv2.imwrite(str(path), labels):
        raise UserError(f"cannot write the label PNG {path} (disk full or the --labels folder removed?)")


def _check_writable(path: Path | None, flag: str) -> None:
    if path is None:
        return
    if path.is_dir():
        raise UserError(f"cannot write {flag} {path}: it is a folder; pass a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"cannot write {flag} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UserError(f"cannot write {flag} {path}: folder {parent} is not writable")


def _check_distinct(opts: SegmentOptions) -> None:
    """The input and every output are different files (writing one over another loses data)."""
    paths: list[tuple[str, Path]] = [("--out", opts.out)]
    if opts.stats is not None:
        paths.append(("--stats", opts.stats))
    if opts.labels_dir is not None:
        paths.append(("--labels", opts.labels_dir))
    if "://" not in opts.source and not opts.source.isdigit():
        paths.insert(0, ("the input", Path(opts.source)))
    seen: dict[Path, str] = {}
    for flag, p in paths:
        r = p.resolve()
        if r in seen:
            raise UserError(f"{flag} {p} is the same file as {seen[r]}; give each output its own name")
        seen[r] = flag
