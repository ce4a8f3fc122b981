"""``lowlatseg bench`` (live latency of every mode), ``bench svconv`` and ``bench split``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lowlatseg.cli.common import (MAX_DELAY_HELP, add_propagation_method_flag, add_spare_flag, json_path, nonneg_int, options,
                                  positive_int, set_threads)
from lowlatseg.defaults import MAX_DELAY_FRAMES, WORKERS
from lowlatseg.errors import UserError


def cmd_bench_split(a: argparse.Namespace) -> int:
    from lowlatseg.evaluation import reporting as rep
    from lowlatseg.evaluation.commands.bench import SplitBenchOptions, bench_split

    set_threads(a.threads)
    rep.check_outputs(json_path(a))
    res = bench_split(options(SplitBenchOptions, a))
    rep.emit(rep.split_table(res), res, json_path(a))
    return 0


def cmd_bench_svconv(a: argparse.Namespace) -> int:
    from lowlatseg.propagation.bench import bench_svconv

    if a.kernel_size % 2 == 0:
        raise UserError(f"--kernel-size {a.kernel_size} must be odd (the kernel has a centre tap)")
    from lowlatseg.evaluation import reporting as rep

    set_threads(a.threads)
    rep.check_outputs(json_path(a))
    res = bench_svconv(channels=a.channels, height=a.height, width=a.width, kernel_size=a.kernel_size,
                       dilation=a.dilation, repeats=a.repeats)
    rep.emit(rep.svconv_table(res), res, json_path(a))
    return 0


def cmd_bench_latency(a: argparse.Namespace) -> int:
    from lowlatseg.evaluation import reporting as rep
    from lowlatseg.evaluation.commands.bench import LatencyBenchOptions, bench_latency

    if a.video is None:
        raise UserError("bench needs --video FILE (or use 'lowlatseg bench svconv')")
    plot = Path(a.plot) if a.plot else None
    rep.check_outputs(json_path(a), plot)
    res = bench_latency(options(LatencyBenchOptions, a))
    if plot is not None:
        rep.latency_plot(res, plot)
    rep.emit(rep.latency_table(res), res, json_path(a))
    return 0


def add_bench_parsers(sub: Any) -> None:
    """``bench`` and its ``svconv`` / ``split`` subcommands."""
    bp = sub.add_parser("bench", help="latency benchmark of every mode on a video fed as a live stream (or 'bench svconv')")
    bp.add_argument("--video", help="video file")
    bp.add_argument("--size", default="360x480", help="network input HxW (default 360x480)")
    bp.add_argument("--fps", type=float, help="stream rate (default: the video's own; 0: as fast as possible)")
    bp.add_argument("--interval", type=int, default=5, help="keyframe interval of the fixed mode")
    bp.add_argument("--threshold", type=float, help="adaptive, instant rule: deviation threshold in [0, 1]")
    bp.add_argument("--budget", type=float, help="adaptive, accumulated rule: deviation budget >= 0 (neither: the scheduler's default)")
    bp.add_argument("--weights")
    bp.add_argument("--propagation")
    bp.add_argument("--scheduler")
    bp.add_argument("--threads", type=positive_int, default=2)
    bp.add_argument("--worker", choices=WORKERS, default="sliced",
                    help="where low-latency runs a keyframe's high: between frames with every core (sliced, default) "
                         "or at the same time as the frames on one core (parallel)")
    bp.add_argument("--max-delay", type=positive_int, default=MAX_DELAY_FRAMES, help=MAX_DELAY_HELP)
    add_spare_flag(bp)
    add_propagation_method_flag(bp)
    bp.add_argument("--max-frames", type=nonneg_int, default=0)
    bp.add_argument("--repeat", type=positive_int, default=1, help="play the clip N times (forwards, backwards, ...) for a long stream")
    bp.add_argument("--rounds", type=positive_int, default=1,
                    help="cut the frames into N consecutive parts and let the modes take turns on them (order "
                         "alternating), each part a stream with its own warm-up: on a machine whose speed drifts, the "
                         "modes share its slow and fast phases (default 1: each mode one stream, one after the other)")
    bp.add_argument("--warmup", type=nonneg_int,
                    help="frames run before the clock starts, reported apart (default: one second of a 25 fps stream)")
    bp.add_argument("--json")
    bp.add_argument("--plot", help="PNG: each mode's latency frame by frame, and how often a frame is at least that slow")
    bp.add_argument("--quiet", action="store_true")
    bp.set_defaults(func=cmd_bench_latency)
    bs = bp.add_subparsers(dest="what", required=False, metavar="WHAT")
    sv = bs.add_parser("svconv", help="spatially variant convolution against a 3x3 conv of the same size")
    sv.add_argument("--channels", type=positive_int, default=128)
    sv.add_argument("--height", type=positive_int, default=45)
    sv.add_argument("--width", type=positive_int, default=60)
    sv.add_argument("--kernel-size", type=positive_int, default=9)
    sv.add_argument("--dilation", type=positive_int, default=2)
    sv.add_argument("--repeats", type=positive_int, default=30)
    sv.add_argument("--threads", type=nonneg_int, default=2)
    sv.add_argument("--json")
    sv.set_defaults(func=cmd_bench_svconv)
    sp = bs.add_parser("split", help="time of low, high and head of the split network")
    sp.add_argument("--size", default="360x480")
    sp.add_argument("--weights")
    sp.add_argument("--repeats", type=positive_int, default=20)
    sp.add_argument("--threads", type=nonneg_int, default=2)
    sp.add_argument("--json")
    sp.set_defaults(func=cmd_bench_split)
