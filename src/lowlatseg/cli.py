"""The ``lowlatseg`` command: a thin layer that parses flags, builds configs and calls the library.

Heavy imports (torch, cv2, av) happen inside the command functions so ``--help`` is instant.
Every :class:`lowlatseg.errors.UserError` becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from lowlatseg.errors import UserError, WorkerError
from lowlatseg.defaults import DEFAULT_DELAY_FRAMES, DEFAULT_PROPAGATION_METHOD, MAX_DELAY_FRAMES, WORKERS

MAX_DELAY_HELP = (f"low-latency, sliced worker: when frames leave a little time between them, a keyframe's features are "
                  f"ready at most N frames after it (default {MAX_DELAY_FRAMES}; larger: lower latency, staler features); "
                  "frames that come back to back split the cores instead, and the features come when high is done")

DEFAULT_CAMVID = "../shared/data/camvid"
DEFAULT_VIDEOS = "../shared/data/video"


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be at least 1")
    return v


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{v} must be 0 or more")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{v} must be greater than 0")
    return v


def _set_threads(n: int) -> None:
    import torch

    if n > 0:
        torch.set_num_threads(n)


# ---------------------------------------------------------------- segment
def cmd_segment(a: argparse.Namespace) -> int:
    from lowlatseg.segment import FILE_PRESET, SegmentOptions, segment_video

    if a.interval is not None and a.mode in ("per-frame", "adaptive"):
        raise UserError(f"--interval applies to --mode fixed and low-latency, not {a.mode}")
    for flag, value in (("--threshold", a.threshold), ("--budget", a.budget)):
        if value is not None and a.mode in ("per-frame", "fixed"):
            raise UserError(f"{flag} applies to --mode adaptive and low-latency, not {a.mode}")
        if value is not None and a.interval is not None:
            raise UserError(f"{flag} and --interval choose different policies (adaptive vs every N frames); give one of them")

    _set_threads(a.threads)
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


# ---------------------------------------------------------------- view
def cmd_view(a: argparse.Namespace) -> int:
    from lowlatseg.view.serve import ViewOptions, serve

    _set_threads(a.threads)
    opts = ViewOptions(
        source=a.input, host=a.host, port=a.port, mode=a.mode,
        weights=Path(a.weights) if a.weights else None,
        propagation=Path(a.propagation) if a.propagation else None,
        scheduler=Path(a.scheduler) if a.scheduler else None,
        interval=a.interval, size=a.size, alpha=a.alpha, loop=a.loop,
    )
    try:
        serve(opts, threads=a.threads)
    except KeyboardInterrupt as e:
        if isinstance(e, Terminated):
            raise
        print("lowlatseg: view stopped (Ctrl-C)", file=sys.stderr)  # the normal way to stop a server
    return 0


# ---------------------------------------------------------------- train
def cmd_train_base(a: argparse.Namespace) -> int:
    from lowlatseg.train.base import train_base
    from lowlatseg.train.config import BaseTrainConfig
    from lowlatseg.data.transforms import AugmentConfig

    _set_threads(a.threads)
    cfg = BaseTrainConfig(
        arch=a.arch, init=_resolve_base(a.init), data=a.data, dataset=a.dataset, split=a.split,
        val_split=None if a.val_split in ("", "none") else a.val_split,
        epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay,
        warmup_epochs=a.warmup_epochs, class_weighting=a.class_weighting, seed=a.seed,
        workers=a.workers, max_steps_per_epoch=a.max_steps_per_epoch,
        augment=AugmentConfig(crop=tuple(a.crop), scale=tuple(a.scale), photometric=a.photometric),
        holdout_drive=a.holdout_drive, pretrained=a.pretrained, distill_epochs=a.distill_epochs,
        body_from=_resolve_base(a.body_from),
    )
    last = train_base(cfg, Path(a.out), resume=not a.no_resume, progress=not a.quiet)
    print(json.dumps(last))
    return 0


# ---------------------------------------------------------------- eval
def cmd_eval_image(a: argparse.Namespace) -> int:
    from lowlatseg.evaluation.report import run_image_eval

    _set_threads(a.threads)
    run_image_eval(
        data=a.data, split=a.split, dataset=a.dataset, weights=a.weights,
        json_path=Path(a.json) if a.json else None, progress=not a.quiet, drive=a.drive, size=a.size,
    )
    return 0


def cmd_eval_video(a: argparse.Namespace) -> int:
    from lowlatseg.evaluation.report import run_video_eval

    _set_threads(a.threads)
    if a.delay_frames < 1:
        raise UserError(f"--delay-frames {a.delay_frames} is not valid; a keyframe is usable one frame after it is chosen at the earliest")
    run_video_eval(data=a.data, split=a.split, interval=a.interval, weights=a.weights, propagation=a.propagation,
                   json_path=Path(a.json) if a.json else None, progress=not a.quiet, max_frames=a.max_frames,
                   scheduled=not a.no_scheduled, scheduler=a.scheduler, delay_frames=a.delay_frames)
    return 0


def cmd_eval_agreement(a: argparse.Namespace) -> int:
    from lowlatseg.evaluation.report import run_agreement_eval

    _set_threads(a.threads)
    run_agreement_eval(video=a.video, interval=a.interval, size=a.size, weights=a.weights, propagation=a.propagation,
                       json_path=Path(a.json) if a.json else None, progress=not a.quiet, max_frames=a.max_frames)
    return 0


def cmd_eval_tradeoff(a: argparse.Namespace) -> int:
    from lowlatseg.evaluation.report import run_tradeoff_eval

    if not math.isfinite(a.fps) or a.fps < 0:
        raise UserError(f"--fps {a.fps} is not valid; use 0 for as fast as possible or the stream rate")
    run_tradeoff_eval(data=a.data, split=a.split, intervals=tuple(a.intervals), fps=a.fps, weights=a.weights,
                      propagation=a.propagation, scheduler=a.scheduler, threads=a.threads, delay_frames=a.delay_frames,
                      plot_path=Path(a.plot) if a.plot else None, json_path=Path(a.json) if a.json else None,
                      progress=not a.quiet, max_frames=a.max_frames, latency_repeat=a.latency_repeat,
                      ladder=None if a.ladder is None else tuple(a.ladder))
    return 0


def _training_videos(a: argparse.Namespace) -> tuple[str, ...]:
    """--video files when given, else every video of --video-dir ('none': no video)."""
    from lowlatseg.data.video_pairs import default_videos

    if a.video:
        if a.video_dir is not None:
            raise UserError("--video and --video-dir both choose the training videos; give one of them")
        return tuple(a.video)
    if a.video_dir in ("", "none"):
        return ()
    return tuple(default_videos(a.video_dir or DEFAULT_VIDEOS))


def _pair_overrides(a: argparse.Namespace, gap_field: str) -> dict[str, Any]:
    """The pair flags the user gave (the trainer's config keeps its defaults for the others)."""
    out: dict[str, Any] = {}
    if a.video_fraction is not None:
        if not 0 <= a.video_fraction <= 1:
            raise UserError(f"--video-fraction {a.video_fraction} must be in [0, 1]: the share of pairs from real video")
        out["video_fraction"] = a.video_fraction
    if a.max_gap is not None:
        out[gap_field] = a.max_gap
    return out


def cmd_train_propagation(a: argparse.Namespace) -> int:
    from lowlatseg.train.propagation import PropTrainConfig, train_propagation

    _set_threads(a.threads)
    cfg = PropTrainConfig(base=_resolve_base(a.base), data=a.data, split=a.split, videos=_training_videos(a), steps=a.steps,
                          batch_size=a.batch_size, lr=a.lr, seed=a.seed, flow_guided=not a.no_flow_guided,
                          **_pair_overrides(a, "max_video_gap"))
    print(json.dumps(train_propagation(cfg, Path(a.out), progress=not a.quiet)))
    return 0


def cmd_train_scheduler(a: argparse.Namespace) -> int:
    from lowlatseg.train.scheduler import SchedTrainConfig, train_scheduler

    _set_threads(a.threads)
    if not 0 < a.target_rate <= 1:
        raise UserError(f"--target-rate {a.target_rate} must be in (0, 1]: the fraction of frames to make keyframes, e.g. 0.2 for one in five")
    cfg = SchedTrainConfig(base=_resolve_base(a.base), propagation=a.propagation, data=a.data, split=a.split,
                           videos=_training_videos(a), steps=a.steps, batch_size=a.batch_size,
                           target_rate=a.target_rate, rule=a.rule, seed=a.seed, **_pair_overrides(a, "max_gap"))
    print(json.dumps(train_scheduler(cfg, Path(a.out), progress=not a.quiet)))
    return 0


def _resolve_base(base: str | None) -> str | None:
    """A run folder stands for its final weights (weights.pt, else best.pt)."""
    if base and Path(base).is_dir():
        return str(Path(base) / "weights.pt") if (Path(base) / "weights.pt").is_file() else str(Path(base) / "best.pt")
    return base


def cmd_eval_scheduling(a: argparse.Namespace) -> int:
    from lowlatseg.evaluation.report import run_scheduling_eval

    json_path = Path(a.json) if a.json else None
    if a.video:
        from lowlatseg.evaluation.scheduling_video import DEFAULT_BOOTSTRAP, DEFAULT_SIZE, run_video_scheduling_eval

        given = [f for f, v in (("--data", a.data), ("--split", a.split)) if v is not None]
        if given:
            raise UserError(f"--video scores unlabelled video against the per-frame network and {' and '.join(given)} "
                            "choose a labelled clip; give one or the other")
        _set_threads(a.threads)
        run_video_scheduling_eval(videos=tuple(a.video), intervals=tuple(a.intervals), max_gap=a.max_gap,
                                  size=a.size or DEFAULT_SIZE, weights=a.weights, propagation=a.propagation,
                                  scheduler=a.scheduler, json_path=json_path, progress=not a.quiet,
                                  max_frames=a.max_frames, chance_samples=a.chance_samples,
                                  bootstrap=DEFAULT_BOOTSTRAP if a.bootstrap is None else a.bootstrap,
                                  seed=0 if a.seed is None else a.seed)
        return 0
    video_only = [f for f, v in (("--size", a.size), ("--bootstrap", a.bootstrap), ("--seed", a.seed)) if v is not None]
    if video_only:
        raise UserError(f"{' and '.join(video_only)} appl{'ies' if len(video_only) == 1 else 'y'} to --video only; "
                        "the labelled clip is scored at its own size without a bootstrap")
    _set_threads(a.threads)
    run_scheduling_eval(data=a.data or DEFAULT_CAMVID, split=a.split or "val", intervals=tuple(a.intervals),
                        max_gap=a.max_gap, weights=a.weights, propagation=a.propagation, scheduler=a.scheduler,
                        json_path=json_path, progress=not a.quiet, max_frames=a.max_frames,
                        chance_samples=a.chance_samples)
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from lowlatseg.checkpoint import export_weights, load_model

    from lowlatseg.evaluation.report import _check_parent

    source = _resolve_base(a.source)
    out = Path(a.out)
    if out.exists() and out.is_dir():
        raise UserError(f"--out {out} is a folder; give the weights file to write, e.g. {out / 'weights.pt'}")
    _check_parent(out)
    model = load_model(source)
    export_weights(model, out, int8=not a.float16, meta={"source": str(source)})
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {'float16' if a.float16 else 'int8 conv weights'}) from {source}; "
          "propagation and scheduler files must be trained on this file (they check its fingerprint)")
    return 0


def cmd_bench_split(a: argparse.Namespace) -> int:
    from lowlatseg.evaluation.report import run_split_bench

    _set_threads(a.threads)
    run_split_bench(size=a.size, weights=a.weights, repeats=a.repeats, json_path=Path(a.json) if a.json else None)
    return 0


def cmd_bench_svconv(a: argparse.Namespace) -> int:
    from lowlatseg.propagation.bench import bench_svconv

    if a.kernel_size % 2 == 0:
        raise UserError(f"--kernel-size {a.kernel_size} must be odd (the kernel has a centre tap)")
    _set_threads(a.threads)
    bench_svconv(channels=a.channels, height=a.height, width=a.width, kernel_size=a.kernel_size,
                 dilation=a.dilation, repeats=a.repeats, json_path=Path(a.json) if a.json else None)
    return 0


def cmd_bench_latency(a: argparse.Namespace) -> int:
    from lowlatseg.evaluation.report import run_latency_bench

    if a.video is None:
        raise UserError("bench needs --video FILE (or use 'lowlatseg bench svconv')")
    run_latency_bench(video=a.video, size=a.size, fps=a.fps, interval=a.interval, threshold=a.threshold,
                      budget=a.budget, weights=a.weights, propagation=a.propagation, scheduler=a.scheduler, threads=a.threads,
                      max_frames=a.max_frames, repeat=a.repeat, warmup=a.warmup, json_path=Path(a.json) if a.json else None,
                      plot_path=Path(a.plot) if a.plot else None, progress=not a.quiet, worker=a.worker,
                      max_delay=a.max_delay, rounds=a.rounds, propagation_method=a.propagation_method)
    return 0


def _add_propagation_eval_args(p: argparse.ArgumentParser) -> None:
    """Flags shared by the propagation benchmarks (eval video, eval agreement, eval scheduling)."""
    p.add_argument("--weights", help="base weights (default: bundled)")
    p.add_argument("--propagation", help="propagation weights (default: bundled)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--max-frames", type=_nonneg_int, default=0)
    p.add_argument("--threads", type=_nonneg_int, default=2)
    p.add_argument("--quiet", action="store_true")


def _add_pair_args(p: argparse.ArgumentParser) -> None:
    """Flags shared by the trainers that learn from (keyframe, frame) pairs with the base frozen."""
    p.add_argument("--data", default=DEFAULT_CAMVID, help="labelled stills for synthetic pairs")
    p.add_argument("--split", default="train")
    p.add_argument("--video", action="append", help="unlabelled clip for teacher-labelled pairs (repeatable; "
                   "instead of --video-dir)")
    p.add_argument("--video-dir", default=None, metavar="DIR",
                   help=f"train on every video of this folder, streamed (default {DEFAULT_VIDEOS}; 'none': synthetic pairs only)")
    p.add_argument("--video-fraction", type=float, default=None, metavar="F",
                   help="share of pairs from real video, the rest synthetic from the stills (0 < F <= 1)")
    p.add_argument("--max-gap", type=_positive_int, default=None,
                   help="longest keyframe gap of video pairs, in frames at 30 fps (scaled by each clip's rate)")
    p.add_argument("--base", help="base weights file or run folder (default: the bundled model)")
    p.add_argument("--out", required=True, help="run folder")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lowlatseg", description="Low-latency semantic segmentation of video streams.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("segment", help="segment a video and write an overlay video")
    s.add_argument("input", help="video file, camera index (e.g. 0) or stream URL")
    s.add_argument("--out", required=True, help="overlay video to write (.mp4)")
    s.add_argument("--labels", help="folder for one PNG of class ids per frame")
    s.add_argument("--stats", help="JSON file for per-frame latency and run details")
    s.add_argument("--weights", help="weights file (default: the bundled model)")
    s.add_argument("--mode", default="low-latency", choices=["per-frame", "fixed", "adaptive", "low-latency"],
                   help="per-frame network, fixed / adaptive keyframes, or low-latency (default)")
    s.add_argument("--interval", type=int, help="keyframe every N frames (fixed; low-latency with a fixed schedule)")
    s.add_argument("--threshold", type=float, help="adaptive scheduling, instant rule: a keyframe when the predicted deviation passes this fraction in [0, 1]")
    s.add_argument("--budget", type=float, help="adaptive scheduling, accumulated rule: a keyframe when the predicted deviations summed since the keyframe pass this (>= 0); default: the scheduler's rule")
    s.add_argument("--propagation", help="propagation weights (default: bundled)")
    s.add_argument("--scheduler", help="scheduler weights (default: bundled)")
    s.add_argument("--size", default="360", help="network input: HxW (e.g. 360x480), a height keeping the aspect ratio (default 360), or native")
    s.add_argument("--max-frames", type=_nonneg_int, default=0, help="stop after N frames (0: all)")
    s.add_argument("--alpha", type=float, default=0.5, help="opacity of the label colours in the overlay")
    s.add_argument("--threads", type=_nonneg_int, default=2, help="torch threads (0: torch's default)")
    s.add_argument("--worker", choices=WORKERS, default="sliced",
                   help="low-latency: where a keyframe's high runs: between frames with every core (sliced, default) "
                        "or at the same time as the frames on one core (parallel)")
    s.add_argument("--max-delay", type=_positive_int, default=MAX_DELAY_FRAMES, help=MAX_DELAY_HELP)
    s.add_argument("--propagation-method", default=DEFAULT_PROPAGATION_METHOD, choices=["adaptive", "flow-guided"],
                   help=f"how non-key frames get their features (default {DEFAULT_PROPAGATION_METHOD}): the paper's adaptive "
                        "kernels, or DIS optical flow corrected by learned kernels")
    s.add_argument("--preset", metavar="PRESET",
                   help="libx264 speed preset of the overlay: ultrafast, superfast (default: less CPU time than veryfast "
                        "for a larger file, leaving the cores to the segmentation), veryfast, faster, fast, medium, "
                        "slow, slower, veryslow, placebo")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_segment)

    v = sub.add_parser("view", help="a local web page showing a stream segmented live (mode switch, latency chart)")
    v.add_argument("input", help="video file, camera index (e.g. 0) or stream URL")
    v.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    v.add_argument("--port", type=int, default=8000, help="port to serve on (default 8000; 0: any free one)")
    v.add_argument("--mode", default="low-latency", choices=["per-frame", "fixed", "adaptive", "low-latency"],
                   help="mode to start in (the page can switch)")
    v.add_argument("--weights", help="weights file (default: the bundled model)")
    v.add_argument("--propagation", help="propagation weights (default: bundled)")
    v.add_argument("--scheduler", help="scheduler weights (default: bundled)")
    v.add_argument("--interval", type=_positive_int, help="fixed mode: a keyframe every N frames (default 5); low-latency: every N frames instead of adaptively")
    v.add_argument("--size", default="360", help="network input: HxW, a height keeping the aspect ratio (default 360), or native")
    v.add_argument("--threads", type=_nonneg_int, default=2, help="torch threads (0: torch's default)")
    v.add_argument("--alpha", type=float, default=0.5, help="opacity of the label colours (the page can change it)")
    v.add_argument("--loop", action="store_true", help="a video file that ends starts again")
    v.set_defaults(func=cmd_view)

    t = sub.add_parser("train", help="train models").add_subparsers(dest="what", required=True, metavar="WHAT")
    b = t.add_parser("base", help="train the split segmentation network on labelled images")
    b.add_argument("--data", default=DEFAULT_CAMVID, help="dataset folder")
    b.add_argument("--dataset", default="camvid", choices=["camvid", "cityscapes"], help="folder layout")
    b.add_argument("--split", default="train")
    b.add_argument("--val-split", default="val", help="split evaluated every epoch ('none' to skip)")
    b.add_argument("--out", required=True, help="run folder (resumes if it holds last.pt)")
    b.add_argument("--arch", default="llnet-s", help="variant: llnet-e (pretrained, with --pretrained), llnet-m, llnet-s, llnet-d16, llnet-tiny")
    b.add_argument("--pretrained", action="store_true",
                   help="llnet-e, llnet-d16: start high's EfficientNet-Lite0 from ImageNet weights (needs the [train] extra)")
    b.add_argument("--distill-epochs", type=_nonneg_int, default=0,
                   help="with --pretrained: epochs in which low first learns to reproduce the pretrained stride-8 features")
    b.add_argument("--holdout-drive", default=None, metavar="DRIVE",
                   help="leave this drive (e.g. 0006R0) out of the training split and score it every epoch (dev-test)")
    b.add_argument("--photometric", action="store_true",
                   help="brightness, contrast, gamma, blur, noise and JPEG augmentation (dusk, rain, night, cameras)")
    b.add_argument("--init", default=None, metavar="WEIGHTS",
                   help="grow from a trained smaller variant of the same widths (its weights or run file): "
                        "its tensors are copied, the extra residual blocks start as the identity")
    b.add_argument("--body-from", default=None, metavar="WEIGHTS",
                   help="copy low and high from a trained network with the same body (e.g. llnet-e for llnet-el), "
                        "freeze them and train only the head")
    b.add_argument("--epochs", type=_positive_int, default=120)
    b.add_argument("--batch-size", type=_positive_int, default=8)
    b.add_argument("--lr", type=_positive_float, default=2e-3)
    b.add_argument("--weight-decay", type=float, default=1e-4)
    b.add_argument("--warmup-epochs", type=_nonneg_int, default=3)
    b.add_argument("--class-weighting", default="sqrt-median", choices=["sqrt-median", "none"])
    b.add_argument("--crop", type=_positive_int, nargs=2, default=[288, 384], metavar=("H", "W"))
    b.add_argument("--scale", type=_positive_float, nargs=2, default=[0.75, 2.0], metavar=("MIN", "MAX"))
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--workers", type=_nonneg_int, default=0)
    b.add_argument("--max-steps-per-epoch", type=_nonneg_int, default=0, help="cap steps per epoch (smoke runs)")
    b.add_argument("--threads", type=_nonneg_int, default=0, help="torch threads per process (0: default)")
    b.add_argument("--no-resume", action="store_true", help="start over even if --out holds a checkpoint")
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(func=cmd_train_base)

    e = sub.add_parser("eval", help="evaluate models").add_subparsers(dest="what", required=True, metavar="WHAT")
    ei = e.add_parser("image", help="per-image mIoU of the per-frame network on a labelled split")
    ei.add_argument("--data", default=DEFAULT_CAMVID)
    ei.add_argument("--dataset", default="camvid", choices=["camvid", "cityscapes"])
    ei.add_argument("--split", default="val")
    ei.add_argument("--weights", help="weights file or run checkpoint (default: the bundled model)")
    ei.add_argument("--drive", help="score only this drive's frames (e.g. 0006R0 held out of training with --holdout-drive)")
    ei.add_argument("--size", metavar="HxW", help="run the network on frames resized to HxW (labels scored at full size)")
    ei.add_argument("--json", help="write the results here")
    ei.add_argument("--threads", type=_nonneg_int, default=2)
    ei.add_argument("--quiet", action="store_true")
    ei.set_defaults(func=cmd_eval_image)

    ev = e.add_parser("video", help="propagation benchmark on a labelled clip (keyframe every N frames)")
    ev.add_argument("--data", default=DEFAULT_CAMVID)
    ev.add_argument("--split", default="val", help="split whose frames are one clip in time order")
    ev.add_argument("--interval", type=int, default=5, help="keyframe interval N (>= 1)")
    _add_propagation_eval_args(ev)
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
    _add_propagation_eval_args(ea)
    ea.set_defaults(func=cmd_eval_agreement)

    et = e.add_parser("tradeoff", help="mean / max latency against mIoU for every method and mode (plot + JSON)")
    et.add_argument("--data", default=DEFAULT_CAMVID)
    et.add_argument("--split", default="val")
    et.add_argument("--intervals", type=_positive_int, nargs="+", default=[2, 3, 5, 8], help="keyframe intervals / rates 1/N")
    et.add_argument("--fps", type=float, default=15.0,
                    help="stream rate for latency (default 15: the CamVid clips' labelled rate, at which low-latency's "
                         "keyframes arrive --delay-frames late; 0: as fast as possible)")
    et.add_argument("--delay-frames", type=_positive_int, default=None,
                    help="low-latency accuracy: frames before keyframe features are ready (default: as many as they "
                         "came late in the live run at --fps, at least 1)")
    et.add_argument("--weights", help="the model whose video modes are plotted (default: the bundled default model)")
    et.add_argument("--propagation")
    et.add_argument("--scheduler")
    et.add_argument("--ladder", action="append", metavar="WEIGHTS[@HxW]",
                    help="a per-frame point to plot beside the video modes (repeatable; default: every bundled network, "
                         "and the model at 240x320 and 288x384)")
    et.add_argument("--threads", type=_positive_int, default=2)
    et.add_argument("--max-frames", type=_nonneg_int, default=0)
    et.add_argument("--latency-repeat", type=_positive_int, default=3,
                    help="latency on the clip played N times (forwards, backwards, ...) for stable maxima")
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
    es.add_argument("--bootstrap", type=_positive_int, metavar="N",
                    help="--video: resamples of 2 s blocks for the 95 %% CI against fixed (default 1000)")
    es.add_argument("--seed", type=_nonneg_int, help="--video: seed of the bootstrap and the chance schedules (default 0)")
    es.add_argument("--intervals", type=_positive_int, nargs="+", default=[2, 3, 5, 8])
    es.add_argument("--max-gap", type=_positive_int, default=12, help="longest keyframe gap considered (a keyframe is forced after it)")
    es.add_argument("--scheduler", help="scheduler weights (default: bundled)")
    es.add_argument("--chance-samples", type=_nonneg_int, default=2000,
                    help="fixed schedules with each keyframe moved at random by up to half the interval, scored as the "
                         "yardstick of what chance gives at the same rate (seed 0, with --video --seed; 0: none)")
    _add_propagation_eval_args(es)
    es.set_defaults(func=cmd_eval_scheduling)

    tp = t.add_parser("propagation", help="train the adaptive kernel predictor and the uniform kernel (base frozen)")
    _add_pair_args(tp)
    tp.add_argument("--steps", type=_positive_int, default=800)
    tp.add_argument("--batch-size", type=_positive_int, default=6)
    tp.add_argument("--lr", type=_positive_float, default=2e-3)
    tp.add_argument("--seed", type=int, default=0)
    tp.add_argument("--threads", type=_nonneg_int, default=0)
    tp.add_argument("--no-flow-guided", action="store_true", help="train only the paper's adaptive and uniform kernels")
    tp.add_argument("--quiet", action="store_true")
    tp.set_defaults(func=cmd_train_propagation)

    ts = t.add_parser("scheduler", help="train the deviation predictor of adaptive keyframe scheduling")
    _add_pair_args(ts)
    ts.add_argument("--propagation", help="propagation weights (default: bundled)")
    ts.add_argument("--steps", type=_positive_int, default=300)
    ts.add_argument("--batch-size", type=_positive_int, default=8)
    ts.add_argument("--target-rate", type=float, default=0.2, help="keyframe rate the default threshold and budget are calibrated for")
    ts.add_argument("--rule", default="accumulated", choices=["accumulated", "instant"],
                    help="default adaptive rule stored with the scheduler (both numbers are calibrated)")
    ts.add_argument("--seed", type=int, default=0)
    ts.add_argument("--threads", type=_nonneg_int, default=0)
    ts.add_argument("--quiet", action="store_true")
    ts.set_defaults(func=cmd_train_scheduler)

    ex = sub.add_parser("export", help="compact inference weights (int8 conv weights) from a run folder or weights file; "
                        "train propagation / scheduler on the exported file, as they are tied to the exact weights")
    ex.add_argument("source", help="run folder, its last.pt / weights.pt, or a weights file")
    ex.add_argument("--out", required=True, help="weights file to write")
    ex.add_argument("--float16", action="store_true", help="keep every tensor float16 (about twice the size)")
    ex.set_defaults(func=cmd_export)

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
    bp.add_argument("--threads", type=_positive_int, default=2)
    bp.add_argument("--worker", choices=WORKERS, default="sliced",
                    help="where low-latency runs a keyframe's high: between frames with every core (sliced, default) "
                         "or at the same time as the frames on one core (parallel)")
    bp.add_argument("--max-delay", type=_positive_int, default=MAX_DELAY_FRAMES, help=MAX_DELAY_HELP)
    bp.add_argument("--propagation-method", default=DEFAULT_PROPAGATION_METHOD, choices=["adaptive", "flow-guided"],
                    help=f"how non-key frames get their features (default {DEFAULT_PROPAGATION_METHOD})")
    bp.add_argument("--max-frames", type=_nonneg_int, default=0)
    bp.add_argument("--repeat", type=_positive_int, default=1, help="play the clip N times (forwards, backwards, ...) for a long stream")
    bp.add_argument("--rounds", type=_positive_int, default=1,
                    help="cut the frames into N consecutive parts and let the modes take turns on them (order "
                         "alternating), each part a stream with its own warm-up: on a machine whose speed drifts, the "
                         "modes share its slow and fast phases (default 1: each mode one stream, one after the other)")
    bp.add_argument("--warmup", type=_nonneg_int,
                    help="frames run before the clock starts, reported apart (default: one second of a 25 fps stream)")
    bp.add_argument("--json")
    bp.add_argument("--plot", help="PNG: each mode's latency frame by frame, and how often a frame is at least that slow")
    bp.add_argument("--quiet", action="store_true")
    bp.set_defaults(func=cmd_bench_latency)
    bs = bp.add_subparsers(dest="what", required=False, metavar="WHAT")
    sv = bs.add_parser("svconv", help="spatially variant convolution against a 3x3 conv of the same size")
    sv.add_argument("--channels", type=_positive_int, default=128)
    sv.add_argument("--height", type=_positive_int, default=45)
    sv.add_argument("--width", type=_positive_int, default=60)
    sv.add_argument("--kernel-size", type=_positive_int, default=9)
    sv.add_argument("--dilation", type=_positive_int, default=2)
    sv.add_argument("--repeats", type=_positive_int, default=30)
    sv.add_argument("--threads", type=_nonneg_int, default=2)
    sv.add_argument("--json")
    sv.set_defaults(func=cmd_bench_svconv)
    sp = bs.add_parser("split", help="time of low, high and head of the split network")
    sp.add_argument("--size", default="360x480")
    sp.add_argument("--weights")
    sp.add_argument("--repeats", type=_positive_int, default=20)
    sp.add_argument("--threads", type=_nonneg_int, default=2)
    sp.add_argument("--json")
    sp.set_defaults(func=cmd_bench_split)
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, ``docker stop``, systemd): stopped like Ctrl-C, so every
    output written so far is finished and valid."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated("terminated (SIGTERM)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    try:
        return int(args.func(args))
    except UserError as e:
        print(f"lowlatseg: error: {e}", file=sys.stderr)
        return 2
    except Terminated:
        print("lowlatseg: terminated (SIGTERM); outputs written so far are complete and valid", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("lowlatseg: interrupted; outputs written so far are complete and valid", file=sys.stderr)
        return 130
    except WorkerError as e:
        print(f"lowlatseg: error: {e}; outputs written so far are complete and valid (to run keyframes "
              "inline instead, use --mode adaptive or fixed)", file=sys.stderr)
        return 1
    finally:
        if in_main_thread and previous is not None:  # None: a handler not set from Python; leave ours
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
