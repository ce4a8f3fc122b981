"""``lowlatseg segment`` and ``lowlatseg view``: the commands that run a stream."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lowlatseg.cli.common import (MAX_DELAY_HELP, Terminated, add_propagation_method_flag, add_spare_flag, nonneg_int,
                                  positive_int, set_threads)
from lowlatseg.defaults import MAX_DELAY_FRAMES, MODES, WORKERS
from lowlatseg.errors import UserError


def cmd_segment(a: argparse.Namespace) -> int:
    from lowlatseg.segment import FILE_PRESET, SegmentOptions, segment_video

    if a.interval is not None and a.mode in ("per-frame", "adaptive"):
        raise UserError(f"--interval applies to --mode fixed and low-latency, not {a.mode}")
    for flag, value in (("--threshold", a.threshold), ("--budget", a.budget)):
        if value is not None and a.mode in ("per-frame", "fixed"):
            raise UserError(f"{flag} applies to --mode adaptive and low-latency, not {a.mode}")
        if value is not None and a.interval is not None:
            raise UserError(f"{flag} and --interval choose different policies (adaptive vs every N frames); give one of them")

    set_threads(a.threads)
    opts = SegmentOptions(
        source=a.input,
        out=Path(a.out),
        labels_dir=Path(a.labels) if a.labels else None,
        stats=Path(a.stats) if a.stats else None,
        weights=Path(a.weights) if a.weights else None,
        mode=a.mode,
        interval=a.interval,
        threshold=a.threshold,
        budget=a.budget,
        propagation=Path(a.propagation) if a.propagation else None,
        scheduler=Path(a.scheduler) if a.scheduler else None,
        size=a.size,
        max_frames=a.max_frames,
        alpha=a.alpha,
        worker=a.worker,
        max_delay=a.max_delay,
        spare_keyframes=a.spare_keyframes,
        preset=FILE_PRESET if a.preset is None else a.preset,
        propagation_method=a.propagation_method,
        progress=not a.quiet,
    )
    summary = segment_video(opts)
    print(
        f"wrote {summary['frames']} frames to {opts.out} "
        f"({summary['resolution']}, mean {summary['latency_ms']['mean']:.1f} ms/frame, {summary['threads']} threads; "
        f"{summary['end_to_end_fps']:.1f} frames/s end to end)"
    )
    return 0


def cmd_view(a: argparse.Namespace) -> int:
    from lowlatseg.view.serve import ViewOptions, serve

    set_threads(a.threads)
    opts = ViewOptions(
        source=a.input, host=a.host, port=a.port, mode=a.mode,
        weights=Path(a.weights) if a.weights else None,
        propagation=Path(a.propagation) if a.propagation else None,
        scheduler=Path(a.scheduler) if a.scheduler else None,
        interval=a.interval, size=a.size, alpha=a.alpha, loop=a.loop, spare_keyframes=a.spare_keyframes,
        propagation_method=a.propagation_method,
    )
    try:
        serve(opts, threads=a.threads)
    except KeyboardInterrupt as e:
        if isinstance(e, Terminated):
            raise
        print("lowlatseg: view stopped (Ctrl-C)", file=sys.stderr)  # the normal way to stop a server
    return 0


def add_segment_parser(sub: Any) -> None:
    """``segment``: a video in, an overlay video (and labels, stats) out."""
    s = sub.add_parser("segment", help="segment a video and write an overlay video")
    s.add_argument("input", help="video file, camera index (e.g. 0) or stream URL")
    s.add_argument("--out", required=True, help="overlay video to write (.mp4)")
    s.add_argument("--labels", help="folder for one PNG of class ids per frame")
    s.add_argument("--stats", help="JSON file for per-frame latency and run details")
    s.add_argument("--weights", help="weights file (default: the bundled model)")
    s.add_argument("--mode", default="low-latency", choices=MODES,
                   help="per-frame network, fixed / adaptive keyframes, or low-latency (default)")
    s.add_argument("--interval", type=int, help="keyframe every N frames (fixed; low-latency with a fixed schedule)")
    s.add_argument("--threshold", type=float, help="adaptive scheduling, instant rule: a keyframe when the predicted deviation passes this fraction in [0, 1]")
    s.add_argument("--budget", type=float, help="adaptive scheduling, accumulated rule: a keyframe when the predicted deviations summed since the keyframe pass this (>= 0); default: the scheduler's rule")
    s.add_argument("--propagation", help="propagation weights (default: bundled)")
    s.add_argument("--scheduler", help="scheduler weights (default: bundled)")
    s.add_argument("--size", default="360", help="network input: HxW (e.g. 360x480), a height keeping the aspect ratio (default 360), or native")
    s.add_argument("--max-frames", type=nonneg_int, default=0, help="stop after N frames (0: all)")
    s.add_argument("--alpha", type=float, default=0.5, help="opacity of the label colours in the overlay")
    s.add_argument("--threads", type=nonneg_int, default=2, help="torch threads (0: torch's default)")
    s.add_argument("--worker", choices=WORKERS, default="sliced",
                   help="low-latency: where a keyframe's high runs: between frames with every core (sliced, default) "
                        "or at the same time as the frames on one core (parallel)")
    s.add_argument("--max-delay", type=positive_int, default=MAX_DELAY_FRAMES, help=MAX_DELAY_HELP)
    add_spare_flag(s)
    add_propagation_method_flag(s)
    s.add_argument("--preset", metavar="PRESET",
                   help="libx264 speed preset of the overlay: ultrafast, superfast (default: less CPU time than veryfast "
                        "for a larger file, leaving the cores to the segmentation), veryfast, faster, fast, medium, "
                        "slow, slower, veryslow, placebo")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_segment)


def add_view_parser(sub: Any) -> None:
    """``view``: the live page."""
    v = sub.add_parser("view", help="a local web page showing a stream segmented live (mode switch, latency chart)")
    v.add_argument("input", help="video file, camera index (e.g. 0) or stream URL")
    v.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    v.add_argument("--port", type=int, default=8000, help="port to serve on (default 8000; 0: any free one)")
    v.add_argument("--mode", default="low-latency", choices=MODES,
                   help="mode to start in (the page can switch)")
    v.add_argument("--weights", help="weights file (default: the bundled model)")
    v.add_argument("--propagation", help="propagation weights (default: bundled)")
    v.add_argument("--scheduler", help="scheduler weights (default: bundled)")
    v.add_argument("--interval", type=positive_int, help="fixed mode: a keyframe every N frames (default 5); low-latency: every N frames instead of adaptively")
    v.add_argument("--size", default="360", help="network input: HxW, a height keeping the aspect ratio (default 360), or native")
    v.add_argument("--threads", type=nonneg_int, default=2, help="torch threads (0: torch's default)")
    v.add_argument("--alpha", type=float, default=0.5, help="opacity of the label colours (the page can change it)")
    v.add_argument("--loop", action="store_true", help="a video file that ends starts again")
    add_spare_flag(v)
    add_propagation_method_flag(v)
    v.set_defaults(func=cmd_view)
