"""``lowlatseg eval image | video | agreement | tradeoff | scheduling``."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from lowlatseg.cli.common import (
    DEFAULT_CAMVID, add_propagation_eval_args, json_path, nonneg_int, options, positive_int, set_threads,
)
from lowlatseg.defaults import DEFAULT_DELAY_FRAMES, DEFAULT_PROPAGATION_METHOD, PROPAGATION_METHODS
from lowlatseg.errors import UserError


def cmd_eval_image(a: argparse.Namespace) -> int:
    from lowlatseg.evaluation import reporting as rep
    from lowlatseg.evaluation.commands.image import ImageEvalOptions, eval_image

    set_threads(a.threads)
    rep.check_outputs(json_path(a))
    res = eval_image(options(ImageEvalOptions, a))
    rep.emit(rep.image_table(res), res, json_path(a))
    return 0


def cmd_eval_video(a: argparse.Namespace) -> int:
    from lowlatseg.evaluation import reporting as rep
    from lowlatseg.evaluation.commands.video import VideoEvalOptions, eval_video

    set_threads(a.threads)
    rep.check_outputs(json_path(a))
    res = eval_video(options(VideoEvalOptions, a, scheduled=not a.no_scheduled))
    rep.emit(rep.video_table(res), res, json_path(a))
    return 0


def cmd_eval_agreement(a: argparse.Namespace) -> int:
    from lowlatseg.evaluation import reporting as rep
    from lowlatseg.evaluation.commands.video import AgreementOptions, eval_agreement

    set_threads(a.threads)
    rep.check_outputs(json_path(a))
    res = eval_agreement(options(AgreementOptions, a))
    rep.emit(rep.video_table(res), res, json_path(a))
    return 0


def cmd_eval_tradeoff(a: argparse.Namespace) -> int:
    from lowlatseg.evaluation import reporting as rep
    from lowlatseg.evaluation.commands.tradeoff import TradeoffOptions, eval_tradeoff

    if not math.isfinite(a.fps) or a.fps < 0:
        raise UserError(f"--fps {a.fps} is not valid; use 0 for as fast as possible or the stream rate")
    plot = Path(a.plot) if a.plot else None
    rep.check_outputs(plot, json_path(a))
    res = eval_tradeoff(options(TradeoffOptions, a))
    print(rep.tradeoff_table(res))
    if plot is not None:
        rep.tradeoff_plot(res, plot)
    rep.save(res, json_path(a))
    return 0


def cmd_eval_scheduling(a: argparse.Namespace) -> int:
    from lowlatseg.evaluation import reporting as rep

    if a.video:
        from lowlatseg.evaluation.commands.scheduling_video import (
            DEFAULT_BOOTSTRAP, DEFAULT_SIZE, VideoSchedulingOptions, eval_video_scheduling,
        )

        given = [f for f, v in (("--data", a.data), ("--split", a.split)) if v is not None]
        if given:
            raise UserError(f"--video scores unlabelled video against the per-frame network and {' and '.join(given)} "
                            "choose a labelled clip; give one or the other")
        set_threads(a.threads)
        rep.check_outputs(json_path(a))
        res_v = eval_video_scheduling(options(
            VideoSchedulingOptions, a, videos=tuple(a.video), size=a.size or DEFAULT_SIZE,
            propagation_method=a.propagation_method or DEFAULT_PROPAGATION_METHOD,
            bootstrap=DEFAULT_BOOTSTRAP if a.bootstrap is None else a.bootstrap, seed=0 if a.seed is None else a.seed))
        rep.emit(rep.video_scheduling_table(res_v), res_v, json_path(a))
        return 0
    from lowlatseg.evaluation.commands.scheduling import SchedulingOptions, eval_scheduling

    video_only = [f for f, v in (("--size", a.size), ("--bootstrap", a.bootstrap), ("--seed", a.seed),
                                 ("--propagation-method", a.propagation_method)) if v is not None]
    if video_only:
        raise UserError(f"{' and '.join(video_only)} appl{'ies' if len(video_only) == 1 else 'y'} to --video only; "
                        "the labelled clip is scored at its own size without a bootstrap")
    set_threads(a.threads)
    rep.check_outputs(json_path(a))
    res = eval_scheduling(options(SchedulingOptions, a, data=a.data or DEFAULT_CAMVID, split=a.split or "val"))
    rep.emit(rep.scheduling_table(res), res, json_path(a))
    return 0


def add_eval_parsers(sub: Any) -> None:
    """``eval``: every evaluation command."""
    e = sub.add_parser("eval", help="evaluate models").add_subparsers(dest="what", required=True, metavar="WHAT")
    ei = e.add_parser("image", help="per-image mIoU of the per-frame network on a labelled split")
    ei.add_argument("--data", default=DEFAULT_CAMVID)
    ei.add_argument("--dataset", default="camvid", choices=["camvid", "cityscapes"])
    ei.add_argument("--split", default="val")
    ei.add_argument("--weights", help="weights file or run checkpoint (default: the bundled model)")
    ei.add_argument("--drive", help="score only this drive's frames (e.g. 0006R0 held out of training with --holdout-drive)")
    ei.add_argument("--size", metavar="HxW", help="run the network on frames resized to HxW (labels scored at full size)")
    ei.add_argument("--json", help="write the results here")
    ei.add_argument("--threads", type=nonneg_int, default=2)
    ei.add_argument("--quiet", action="store_true")
    ei.set_defaults(func=cmd_eval_image)

    ev = e.add_parser("video", help="propagation benchmark on a labelled clip (keyframe every N frames)")
    ev.add_argument("--data", default=DEFAULT_CAMVID)
    ev.add_argument("--split", default="val", help="split whose frames are one clip in time order")
    ev.add_argument("--interval", type=int, default=5, help="keyframe interval N (>= 1)")
    add_propagation_eval_args(ev)
    ev.add_argument("--scheduler", help="scheduler weights (default: bundled)")
    ev.add_argument("--no-scheduled", action="store_true", help="skip the adaptive-scheduled and low-latency rows")
    ev.add_argument("--delay-frames", type=int, default=DEFAULT_DELAY_FRAMES,
                    help=f"low-latency row: frames before a keyframe's features are ready (default {DEFAULT_DELAY_FRAMES}: measured live "
                         "on the 15 Hz CamVid clip with 2 cores; `eval tradeoff` and `lowlatseg bench` report it for your machine)")
    ev.set_defaults(func=cmd_eval_video)

    ea = e.add_parser("agreement", help="the propagation methods on unlabelled video, scored against the per-frame network")
    ea.add_argument("--video", required=True)
    ea.add_argument("--interval", type=int, default=5)
    ea.add_argument("--size", default="360", help="network input: HxW, a height keeping the aspect ratio, or native")
    add_propagation_eval_args(ea)
    ea.set_defaults(func=cmd_eval_agreement)

    et = e.add_parser("tradeoff", help="mean / max latency against mIoU for every method and mode (plot + JSON)")
    et.add_argument("--data", default=DEFAULT_CAMVID)
    et.add_argument("--split", default="val")
    et.add_argument("--intervals", type=positive_int, nargs="+", default=[2, 3, 5, 8], help="keyframe intervals / rates 1/N")
    et.add_argument("--fps", type=float, default=15.0,
                    help="stream rate for latency (default 15: the CamVid clips' labelled rate, at which low-latency's "
                         "keyframes arrive as late as measured live, or --delay-frames; 0: as fast as possible)")
    et.add_argument("--delay-frames", type=positive_int, default=None,
                    help="low-latency accuracy: frames before keyframe features are ready (default: as many as they "
                         "came late in the live run at --fps, at least 1)")
    et.add_argument("--weights", help="the model whose video modes are plotted (default: the bundled default model)")
    et.add_argument("--propagation")
    et.add_argument("--scheduler")
    et.add_argument("--ladder", action="append", metavar="WEIGHTS[@HxW]",
                    help="a per-frame point to plot beside the video modes (repeatable; default: every bundled network "
                         "at the clip's size, 192x256, 240x320 and 288x384)")
    et.add_argument("--propagation-method", default=DEFAULT_PROPAGATION_METHOD, choices=PROPAGATION_METHODS,
                    help=f"what the adaptive-scheduled and low-latency points propagate with, as the runtime's "
                         f"--propagation-method (default {DEFAULT_PROPAGATION_METHOD})")
    et.add_argument("--low-latency-methods", nargs="+", metavar="METHOD", choices=PROPAGATION_METHODS, default=[],
                    help="more low-latency points, propagating with these methods (at the clip's size and at every "
                         "--low-latency-sizes)")
    et.add_argument("--low-latency-sizes", nargs="+", metavar="HxW", default=[],
                    help="more low-latency points of the model, at these input sizes (e.g. 288x384 240x320), "
                         "beside the ladder at the same sizes")
    et.add_argument("--no-spare-keyframes", dest="spare_keyframes", action="store_false",
                    help="low-latency points without spare keyframes only (default: as the runtime runs them, a "
                         "keyframe on every frame while the stream leaves time for a whole high, then the same "
                         "points without them, as low-latency-no-spare)")
    et.add_argument("--threads", type=positive_int, default=2)
    et.add_argument("--max-frames", type=nonneg_int, default=0)
    et.add_argument("--latency-repeat", type=positive_int, default=3,
                    help="latency on the clip played N times (forwards, backwards, ...) for stable maxima")
    et.add_argument("--rounds", type=positive_int, default=1,
                    help="live passes of every point, the points in turn (as bench --rounds): a machine whose speed "
                         "drifts slows every point alike; latency pooled over them")
    et.add_argument("--plot", help="PNG to write")
    et.add_argument("--json")
    et.add_argument("--quiet", action="store_true")
    et.set_defaults(func=cmd_eval_tradeoff)

    es = e.add_parser("scheduling", help="every keyframe rule at the same keyframe count, with oracle and ground-truth references")
    es.add_argument("--data", help=f"labelled clip (default {DEFAULT_CAMVID}; not with --video)")
    es.add_argument("--split", help="its split (default val)")
    es.add_argument("--video", action="append", metavar="FILE",
                    help="unlabelled video instead, scored against the per-frame network (repeatable: each its own "
                         "stream, also pooled), with a paired block bootstrap CI of every rule against fixed")
    es.add_argument("--size", help="--video: network input, HxW, a height keeping the aspect ratio, or native (default 360)")
    es.add_argument("--bootstrap", type=positive_int, metavar="N",
                    help="--video: resamples of 2 s blocks for the 95 %% CI against fixed (default 1000)")
    es.add_argument("--seed", type=nonneg_int, help="--video: seed of the bootstrap and the chance schedules (default 0)")
    es.add_argument("--propagation-method", choices=PROPAGATION_METHODS,
                    help=f"--video: what non-key frames propagate with, as the runtime's --propagation-method (default "
                         f"{DEFAULT_PROPAGATION_METHOD}); the labelled clip is scored with the paper's adaptive kernels")
    es.add_argument("--intervals", type=positive_int, nargs="+", default=[2, 3, 5, 8])
    es.add_argument("--max-gap", type=positive_int, default=12, help="longest keyframe gap considered (a keyframe is forced after it)")
    es.add_argument("--scheduler", help="scheduler weights (default: bundled)")
    es.add_argument("--chance-samples", type=nonneg_int, default=2000,
                    help="fixed schedules with each keyframe moved at random by up to half the interval, scored as the "
                         "yardstick of what chance gives at the same rate (seed 0, with --video --seed; 0: none)")
    add_propagation_eval_args(es)
    es.set_defaults(func=cmd_eval_scheduling)
