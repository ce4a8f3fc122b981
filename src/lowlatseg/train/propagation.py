"""Training of the learned propagation methods (``lowlatseg train propagation``).

The base network is frozen (``low``, ``high`` and ``head`` in eval mode); the adaptive kernel
predictor and the uniform kernel are trained on pairs (keyframe, current frame) so that
``head(propagate(F_h^k), F_l^t)`` labels the current frame well. Each step's batch mixes:

(a) synthetic pairs from labelled CamVid stills (camera motion + moving objects, exact labels;
    :mod:`lowlatseg.data.synthetic`), gaps 1..10 frames at 30 fps;
(b) real unlabelled video (``--video``), gaps 1..8 frames at 25 fps (~1/3 s), labelled by the
    per-frame network (the teacher) on the current frame.

Loss = cross-entropy against the labels + ``feature_weight`` x MSE between the propagated
F_h and the teacher's own F_h of the current frame (normalised by the teacher's variance).
The labelled CamVid frames themselves are 1 s apart (too far for a keyframe interval), so
they enter through (a) only; the 15 Hz val clip stays out (it is the dev set).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from lowlatseg.checkpoint import atomic_save, load_model
from lowlatseg.classes import IGNORE_INDEX
from lowlatseg.data.camvid import camvid
from lowlatseg.data.pairs import PairSampler
from lowlatseg.data.synthetic import MotionConfig
from lowlatseg.data.transforms import to_tensor
from lowlatseg.errors import UserError
from lowlatseg.io.video import VideoReader
from lowlatseg.propagation.methods import Adaptive, Current, KeyState, PropagationConfig, Uniform
from lowlatseg.propagation.weights import save_propagation
from lowlatseg.train.runs import start_run, write_config


@dataclass(frozen=True)
class PropTrainConfig:
    base: str | None = None  # base weights (None: the bundled default model)
    data: str = "../shared/data/camvid"  # labelled stills for synthetic pairs
    split: str = "train"
    videos: tuple[str, ...] = ()  # unlabelled clips for teacher-labelled pairs
    steps: int = 800  # optimiser steps
    batch_size: int = 6  # pairs per step
    video_fraction: float = 0.4  # share of pairs from real video (when videos are given)
    max_video_gap: int = 8  # frames, at the clip's own rate
    lr: float = 2e-3  # AdamW, cosine decay to 0
    feature_weight: float = 0.5  # weight of the feature-distillation term
    crop: tuple[int, int] = (360, 480)  # H, W of training pairs
    seed: int = 0
    prop: PropagationConfig = field(default_factory=PropagationConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)


def _load_video_frames(path: str, height: int, min_width: int = 0) -> list[np.ndarray]:
    """Frames resized to ``height`` (aspect kept); at least ``min_width`` wide for training crops."""
    frames = []
    with VideoReader(path) as r:
        for f in r:
            h, w = f.shape[:2]
            new_w = int(round(w * height / h))
            if new_w < min_width:
                raise UserError(f"{path} is {w}x{h}: at height {height} it is narrower than the {min_width} px training crop; use landscape video")
            frames.append(cv2.resize(f, (new_w, height), interpolation=cv2.INTER_AREA))
    return frames


def train_propagation(cfg: PropTrainConfig, out: Path, *, progress: bool = True) -> dict[str, Any]:
    """Trains the adaptive predictor and the uniform kernel; writes ``out/propagation.pt``."""
    rng = start_run(cfg, out)

    # 1. frozen base network and the two learned methods
    base = load_model(cfg.base)
    for p in base.parameters():
        p.requires_grad_(False)
    adaptive = Adaptive(cfg.prop, low_ch=base.config.low_ch)
    uniform = Uniform(cfg.prop)
    params = list(adaptive.parameters()) + list(uniform.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.05)

    # 2. data: stills (cached) and decoded video clips
    stills = camvid(cfg.data, cfg.split)
    donors = [stills[i] for i in range(0, len(stills), 7)]
    clips = [_load_video_frames(v, cfg.crop[0], cfg.crop[1]) for v in cfg.videos]
    clips = [c for c in clips if len(c) > cfg.max_video_gap + 1]
    if cfg.videos and not clips:
        raise UserError("none of the --video clips has enough frames for training pairs")

    write_config(cfg, out)  # the inputs loaded: now the run folder
    ch, cw = cfg.crop
    pairs = PairSampler(stills, donors, clips, cfg.motion, cfg.crop, cfg.video_fraction, cfg.max_video_gap, min_gap=1, flip=True)
    log: list[dict[str, Any]] = []
    bar = tqdm(range(cfg.steps), desc="train propagation", disable=not progress)
    t0 = time.perf_counter()
    for step in bar:
        # 3. a batch of pairs: (key image, current image, current label or None for teacher)
        keys, curs, labels = zip(*(pairs.sample(rng) for _ in range(cfg.batch_size)))
        xk = torch.stack([to_tensor(k) for k in keys])  # B x 3 x H x W
        xc = torch.stack([to_tensor(c) for c in curs])

        # 4. frozen features and teacher targets
        with torch.no_grad():
            fl_k, fl_c = base.low(xk), base.low(xc)
            fh_k, fh_c = base.high(fl_k), base.high(fl_c)
            teacher = base.head(fh_c, fl_c, (ch, cw)).argmax(1)
        y = torch.stack([teacher[i] if lab is None else torch.from_numpy(np.ascontiguousarray(lab)).long()
                         for i, lab in enumerate(labels)])
        key = KeyState(index=0, image=xk, f_low=fl_k, f_high=fh_k)
        cur = Current(index=1, image=xc, f_low=fl_c)
        var = fh_c.var().clamp_min(1e-6)

        # 5. both learned methods, same loss
        adaptive.train()
        losses = {}
        total = torch.zeros(())
        for name, method in (("adaptive", adaptive), ("uniform", uniform)):
            prop = method.propagate(key, cur)
            logits = base.head(prop, fl_c, (ch, cw))
            ce = F.cross_entropy(logits, y, ignore_index=IGNORE_INDEX)
            feat = F.mse_loss(prop, fh_c) / var
            loss = ce + cfg.feature_weight * feat
            total = total + loss
            losses[name] = (ce.item(), feat.item())
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        sched.step()
        bar.set_postfix(ce=f"{losses['adaptive'][0]:.3f}", uni=f"{losses['uniform'][0]:.3f}")
        if (step + 1) % 20 == 0 or step + 1 == cfg.steps:
            entry = {"step": step + 1, "adaptive_ce": losses["adaptive"][0], "adaptive_feat": losses["adaptive"][1],
                     "uniform_ce": losses["uniform"][0], "seconds": round(time.perf_counter() - t0, 1)}
            log.append(entry)
            with (out / "log.jsonl").open("a") as f:
                f.write(json.dumps(entry) + "\n")
        if (step + 1) % 100 == 0 or step + 1 == cfg.steps:
            adaptive.eval()
            save_propagation(out / "propagation.pt", cfg=cfg.prop, base=base, adaptive=adaptive, uniform=uniform,
                             extra={"train_config": _jsonable(asdict(cfg)), "step": step + 1})
    atomic_save({"log": log}, out / "log.pt")
    return log[-1] if log else {}


def _jsonable(d: Any) -> Any:
    return json.loads(json.dumps(d))
