"""Training of the deviation predictor (``lowlatseg train scheduler``).

Targets come from the frozen base network and a propagation method (``method``: the runtime's
default, DIS flow, unless told; files before 2026-12-07 learned the adaptive kernels'): for a
pair (keyframe k, frame t) the true deviation is the fraction of feature-grid pixels where the
propagated label (with fusion) differs from the per-frame network's label of frame t (the
teacher); with ``target = "class-weighted"`` each such pixel is weighted by the rarity of its two
classes in the training split's labels (scheduling/targets.py; the file stores the frequencies). Pairs: real unlabelled video at gaps 0..``max_gap`` and synthetic camera-motion pairs
from the labelled stills (:mod:`lowlatseg.data.synthetic`). After training, the default
threshold (instant rule) and budget (accumulated rule) are calibrated on the videos for a
keyframe rate of ``target_rate``; ``rule`` says which one ``--mode adaptive`` uses by default.

``predictor = "warp-error"`` (:class:`~lowlatseg.scheduling.predictor.WarpErrorPredictor`) has no
weights: nothing is trained, and only its threshold and budget are calibrated on the videos.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from lowlatseg.checkpoint import load_model
from lowlatseg.defaults import DEFAULT_PROPAGATION_METHOD, PROPAGATION_METHODS
from lowlatseg.errors import ParameterError
from lowlatseg.data.camvid import SegmentationDataset, camvid
from lowlatseg.data.pairs import PairSampler
from lowlatseg.data.synthetic import MotionConfig
from lowlatseg.data.video_pairs import check_videos
from lowlatseg.data.transforms import to_tensor
from lowlatseg.io.video import VideoReader
from lowlatseg.nn.splitnet import SplitSegNet
from lowlatseg.propagation.methods import Current, KeyState
from lowlatseg.propagation.weights import runtime_propagator
from lowlatseg.scheduling.calibrate import threshold_for_rate
from lowlatseg.scheduling.policies import check_rule, true_deviation
from lowlatseg.scheduling.predictor import KINDS, DeviationConfig, DeviationPredictor, Predictor, WarpErrorPredictor
from lowlatseg.scheduling.targets import check_target, pair_weights
from lowlatseg.scheduling.weights import save_scheduler
from lowlatseg.train.runs import start_run, write_config
from lowlatseg.train.propagation import video_stream


UNCALIBRATED_THRESHOLD, UNCALIBRATED_BUDGET = 0.1, 0.5  # stored when no video is given to calibrate on


@dataclass(frozen=True)
class SchedTrainConfig:
    base: str | None = None  # base weights (None: bundled)
    propagation: str | None = None  # propagation weights (None: bundled; not read for method "flow")
    method: str = DEFAULT_PROPAGATION_METHOD  # whose deviation the predictor learns: what the runtime propagates with
    data: str = "../shared/data/camvid"
    split: str = "train"
    videos: tuple[str, ...] = ()
    steps: int = 300
    batch_size: int = 8
    max_gap: int = 20  # frames between keyframe and current frame (video: at 30 fps, scaled by each clip's rate)
    calib_frames: int = 150  # frames from the start of each video the threshold and budget are calibrated on
    video_fraction: float = 0.6
    lr: float = 2e-3
    target_rate: float = 0.2  # keyframe rate the default threshold and budget are calibrated for
    rule: str = "accumulated"  # default adaptive rule stored with the scheduler (instant | accumulated)
    predictor: str = "learned"  # "learned" (trained) or "warp-error" (no weights: calibrated only)
    error_level: int = 16  # warp-error: grey levels beyond which a pixel is not explained by the flow
    target: str = "pixels"  # what a learned predictor learns (scheduling/targets.py): "pixels" or "class-weighted"
    crop: tuple[int, int] = (360, 480)
    seed: int = 0
    motion: MotionConfig = field(default_factory=lambda: MotionConfig(max_gap=20))


@torch.no_grad()
def _clip_f_lows(base: SplitSegNet, path: str, crop: tuple[int, int], frames: int) -> list[torch.Tensor]:
    """``low`` of the first ``frames`` frames of a video (height crop[0], left crop[1] columns), streamed."""
    ch, cw = crop
    out = []
    with VideoReader(path) as r:
        for f in r:
            h, w = f.shape[:2]
            f = cv2.resize(f, (max(cw, round(w * ch / h)), ch), interpolation=cv2.INTER_AREA)
            out.append(base.low(to_tensor(np.ascontiguousarray(f[:, :cw])).unsqueeze(0)))
            if len(out) >= frames:
                break
    return out


def train_scheduler(cfg: SchedTrainConfig, out: Path, *, progress: bool = True) -> dict[str, Any]:
    check_rule(cfg.rule)
    if cfg.method not in PROPAGATION_METHODS:
        raise ParameterError(f"propagation method {cfg.method!r} is not one of {', '.join(PROPAGATION_METHODS)}", "method")
    if cfg.predictor not in KINDS:
        raise ParameterError(f"{{predictor}} {cfg.predictor!r} is not one of {', '.join(KINDS)}", "predictor")
    check_target(cfg.target)
    if cfg.predictor == "warp-error" and cfg.target != "pixels":
        raise ParameterError("a warp-error scheduler learns nothing, so {target} does not apply to it; drop one of the two",
                             "target", "predictor")
    rng = start_run(cfg, out)
    base = load_model(cfg.base)
    pred: Predictor
    extra: dict[str, Any] = {"deviation_target": cfg.target}
    if cfg.predictor == "warp-error":
        if not cfg.videos:
            raise ParameterError("a warp-error scheduler is only calibrated, on video: pass {video} or {video_dir}",
                                 "video", "video_dir")
        if base.learned_low_ch == base.config.low_ch:
            raise ParameterError(f"{base.config.arch} does not carry the frame inside f_low, which a warp-error scheduler reads; "
                                 "use a learned scheduler (drop {predictor}) for this network", "predictor")
        pred = WarpErrorPredictor(DeviationConfig(kind="warp-error", low_ch=base.config.low_ch, error_level=cfg.error_level))
        check_videos(cfg.videos, max_gap_30=1)
        write_config(cfg, out)
        log: list[dict[str, Any]] = []
    else:
        stills = camvid(cfg.data, cfg.split)
        weights = None
        if cfg.target == "class-weighted":
            extra["class_frequencies"] = [round(float(f), 6) for f in stills.class_frequencies()]
            if len(extra["class_frequencies"]) != base.config.num_classes:
                raise ParameterError(f"the training split has {len(extra['class_frequencies'])} classes but {base.config.arch} "
                                     f"predicts {base.config.num_classes}; pass the {{data}} the network was trained on", "data")
            weights = pair_weights(extra["class_frequencies"])
        pred, log = _fit(cfg, base, rng, out, stills, weights, progress=progress)
    return _calibrate_and_save(cfg, base, pred, log, out, extra)


def _fit(cfg: SchedTrainConfig, base: SplitSegNet, rng: np.random.Generator, out: Path, stills: SegmentationDataset,
         weights: torch.Tensor | None, *, progress: bool) -> tuple[DeviationPredictor, list[dict[str, Any]]]:
    """Steps 1-2 of a learned predictor, on pairs from ``stills`` and the videos, against the
    class-weighted deviation when given ``weights``: writes the run folder's config and log."""
    # 1. frozen base + the propagation method whose deviations are learned (the teacher)
    teacher = runtime_propagator(cfg.propagation, base, cfg.method)
    pred = DeviationPredictor(DeviationConfig(low_ch=base.config.low_ch, in_ch=base.learned_low_ch))
    opt = torch.optim.AdamW(pred.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.05)

    # 2. data
    donors = [stills[i] for i in range(0, len(stills), 7)]
    stream = video_stream(cfg.videos, crop=cfg.crop, max_gap_30=cfg.max_gap, fraction=cfg.video_fraction)
    write_config(cfg, out)  # the inputs checked: now the run folder
    ch, cw = cfg.crop
    pairs = PairSampler(stills, donors, [], cfg.motion, cfg.crop, cfg.video_fraction, cfg.max_gap, min_gap=0, flip=False,
                        stream=stream)

    bar = tqdm(range(cfg.steps), desc="train scheduler", disable=not progress)
    t0 = time.perf_counter()
    log: list[dict[str, Any]] = []
    for step in bar:
        keys, curs, _ = zip(*(pairs.sample(rng) for _ in range(cfg.batch_size)))
        xk = torch.stack([to_tensor(k) for k in keys])
        xc = torch.stack([to_tensor(c) for c in curs])
        with torch.no_grad():
            fl_k, fl_c = base.low(xk), base.low(xc)
            key = KeyState(index=0, image=xk, f_low=fl_k, f_high=base.high(fl_k))
            target = true_deviation(base, teacher, key, Current(index=1, image=xc, f_low=fl_c), weights)
        pred.train()
        p = pred(fl_k, fl_c)
        loss = F.smooth_l1_loss(p, target, beta=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % 20 == 0 or step + 1 == cfg.steps:
            entry = {"step": step + 1, "loss": loss.item(), "mae": (p - target).abs().mean().item(),
                     "seconds": round(time.perf_counter() - t0, 1)}
            log.append(entry)
            with (out / "log.jsonl").open("a") as f:
                f.write(json.dumps(entry) + "\n")

    pred.eval()
    if stream is not None:
        stream.close()
    return pred, log


def _calibrate_and_save(cfg: SchedTrainConfig, base: SplitSegNet, pred: Predictor, log: list[dict[str, Any]],
                        out: Path, extra: dict[str, Any]) -> dict[str, Any]:
    # 3. calibrate the default threshold and budget for the target keyframe rate on the videos; with
    # no video there is no stream to calibrate on: fixed defaults, said so
    f_lows = [_clip_f_lows(base, v, cfg.crop, cfg.calib_frames) for v in cfg.videos]
    if f_lows:
        threshold = threshold_for_rate(pred, f_lows, cfg.target_rate)
        budget = threshold_for_rate(pred, f_lows, cfg.target_rate, rule="accumulated")
    else:
        threshold, budget = UNCALIBRATED_THRESHOLD, UNCALIBRATED_BUDGET
        tqdm.write(f"lowlatseg: warning: no --video to calibrate on; the scheduler stores threshold {threshold} and budget "
                   f"{budget} uncalibrated (pass --threshold or --budget at run time, or train with --video)", file=sys.stderr)
    save_scheduler(out / "scheduler.pt", predictor=pred, base=base, threshold=threshold, budget=budget, rule=cfg.rule,
                   extra={"train_config": json.loads(json.dumps(asdict(cfg))), "target_rate": cfg.target_rate, **extra})
    result = dict(log[-1]) if log else {}
    result.update(default_rule=cfg.rule, default_threshold=threshold, default_budget=budget)
    return result
