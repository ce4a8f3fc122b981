"""Training of the learned propagation methods (``lowlatseg train propagation``).

The base network is frozen (``low``, ``high`` and ``head`` in eval mode); the adaptive kernel
predictor and the uniform kernel are trained on pairs (keyframe, current frame) so that
``head(propagate(F_h^k), F_l^t)`` labels the current frame well. Each step's batch mixes:

(a) synthetic pairs from labelled CamVid stills (camera motion + moving objects, exact labels;
    :mod:`lowlatseg.data.synthetic`), gaps 1..10 frames at 30 fps;
(b) real unlabelled video (``--video`` files or every file of ``--video-dir``), streamed
    (:mod:`lowlatseg.data.video_pairs`: no video is held in memory whole), gaps 1..10 frames at
    30 fps scaled by each clip's own rate, labelled by the per-frame network (the teacher) on the
    current frame: distillation of the per-frame network.

Loss = cross-entropy against the labels + ``feature_weight`` x MSE between the propagated
F_h and the teacher's own F_h of the current frame (normalised by the teacher's variance). The
adaptive predictor also gets ``kernel_weight`` x the cross-entropy of its kernels against the
kernels built from DIS flow on its own tap grid (:mod:`lowlatseg.propagation.flow_kernels`;
``kernel_flow_preset``): a dense signal of where content moved. Off by default: in a 250-step
trial it made the kernels flatter, not better (docs/measurements.md). Only training computes that
flow; at run time the kernels come from the low-level features.
The labelled CamVid frames themselves are 1 s apart (too far for a keyframe interval), so
they enter through (a) only; the 15 Hz val clip stays out (it is the dev set).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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
from lowlatseg.errors import ParameterError
from lowlatseg.data.video_pairs import VideoPairStream, check_videos
from lowlatseg.propagation.flow import DISFlow
from lowlatseg.propagation.flow_guided import FlowGuided
from lowlatseg.propagation.flow_kernels import flow_kernels, kernel_cross_entropy
from lowlatseg.propagation.methods import Adaptive, Current, KeyState, PropagationConfig, Uniform, grid_flow
from lowlatseg.propagation.svconv import sv_conv
from lowlatseg.propagation.weights import save_propagation
from lowlatseg.train.runs import start_run, write_config


@dataclass(frozen=True)
class PropTrainConfig:
    base: str | None = None  # base weights (None: the bundled default model)
    data: str = "../shared/data/camvid"  # labelled stills for synthetic pairs
    split: str = "train"
    videos: tuple[str, ...] = ()  # unlabelled clips for teacher-labelled pairs (the CLI fills in --video-dir's)
    steps: int = 800  # optimiser steps
    batch_size: int = 6  # pairs per step
    video_fraction: float = 0.4  # share of pairs from real video (when videos are given); 0: synthetic only
    max_video_gap: int = 10  # frames at 30 fps (scaled by each clip's rate); video pairs use gaps 1..this
    flow_guided: bool = True  # also train the flow-guided method (propagation/flow_guided.py)
    lr: float = 2e-3  # AdamW, cosine decay to 0
    feature_weight: float = 0.5  # weight of the feature-distillation term
    kernel_weight: float = 0.0  # weight of the adaptive kernels' flow-kernel target (0: off; it did not pay, docs/measurements.md)
    kernel_flow_preset: str = "medium"  # DIS preset of that target's flow (training only)
    crop: tuple[int, int] = (360, 480)  # H, W of training pairs
    seed: int = 0
    prop: PropagationConfig = field(default_factory=PropagationConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)


def video_stream(videos: tuple[str, ...], *, crop: tuple[int, int], max_gap_30: int, fraction: float) -> VideoPairStream | None:
    """The streamed video pairs of a trainer (None without videos); flags that do not go together are refused."""
    if not videos:
        if fraction >= 1.0:
            raise ParameterError("{video_fraction} 1 asks for video pairs only, but no video was given; pass {video} or {video_dir}",
                                 "video_fraction", "video", "video_dir")
        return None
    if fraction <= 0.0:
        raise ParameterError("{video_fraction} 0 uses synthetic pairs only; drop {video}/{video_dir}, or raise the fraction",
                             "video_fraction", "video", "video_dir")
    return VideoPairStream(check_videos(videos, max_gap_30=max_gap_30), height=crop[0], min_width=crop[1],
                           max_gap_30=max_gap_30)


def train_propagation(cfg: PropTrainConfig, out: Path, *, progress: bool = True) -> dict[str, Any]:
    """Trains the adaptive predictor and the uniform kernel; writes ``out/propagation.pt``."""
    rng = start_run(cfg, out)

    # 1. frozen base network and the two learned methods
    base = load_model(cfg.base)
    for p in base.parameters():
        p.requires_grad_(False)
    adaptive = Adaptive(cfg.prop, low_ch=base.config.low_ch)
    uniform = Uniform(cfg.prop)
    guided = FlowGuided(cfg.prop, low_ch=base.config.low_ch) if cfg.flow_guided else None
    params = list(adaptive.parameters()) + list(uniform.parameters())
    if guided is not None:
        params += list(guided.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.05)

    # 2. data: stills (cached) and streamed real video
    stills = camvid(cfg.data, cfg.split)
    donors = [stills[i] for i in range(0, len(stills), 7)]
    stream = video_stream(cfg.videos, crop=cfg.crop, max_gap_30=cfg.max_video_gap, fraction=cfg.video_fraction)

    target_flow = DISFlow(cfg.kernel_flow_preset) if cfg.kernel_weight > 0 else None
    write_config(cfg, out)  # the inputs checked: now the run folder
    ch, cw = cfg.crop
    pairs = PairSampler(stills, donors, [], cfg.motion, cfg.crop, cfg.video_fraction, cfg.max_video_gap, min_gap=1,
                        flip=True, stream=stream)
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

        # 5. the learned methods, same loss (the adaptive one with its flow-kernel target too)
        adaptive.train()
        kernel_loss = torch.zeros(())
        adaptive_prop = None
        if target_flow is not None:  # where the flow says each location's content came from, on the tap grid
            target = flow_kernels(grid_flow(target_flow, key, cur, (fl_c.shape[-2], fl_c.shape[-1])),
                                  cfg.prop.kernel_size, cfg.prop.dilation)
            log_w = torch.log_softmax(adaptive.predictor.logits(fl_k, fl_c), dim=1)
            kernel_loss = kernel_cross_entropy(log_w, target)
            # the same kernels move the features (one predictor pass a step, as without the target)
            adaptive_prop = sv_conv(fh_k, log_w.exp(), kernel_size=cfg.prop.kernel_size, dilation=cfg.prop.dilation)
        losses = {}
        total = torch.zeros(())
        methods: list[tuple[str, Adaptive | Uniform | FlowGuided]] = [("adaptive", adaptive), ("uniform", uniform)]
        if guided is not None:
            guided.train()
            methods.append(("flow-guided", guided))
        for name, method in methods:
            prop = adaptive_prop if name == "adaptive" and adaptive_prop is not None else method.propagate(key, cur)
            logits = base.head(prop, fl_c, (ch, cw))
            ce = F.cross_entropy(logits, y, ignore_index=IGNORE_INDEX)
            feat = F.mse_loss(prop, fh_c) / var
            loss = ce + cfg.feature_weight * feat + (cfg.kernel_weight * kernel_loss if name == "adaptive" else 0.0)
            total = total + loss
            losses[name] = (ce.item(), feat.item())
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        sched.step()
        bar.set_postfix(ce=f"{losses['adaptive'][0]:.3f}", uni=f"{losses['uniform'][0]:.3f}",
                        **({"guided": f"{losses['flow-guided'][0]:.3f}"} if guided is not None else {}))
        if (step + 1) % 20 == 0 or step + 1 == cfg.steps:
            entry = {"step": step + 1, "adaptive_ce": losses["adaptive"][0], "adaptive_feat": losses["adaptive"][1],
                     "adaptive_kernel": kernel_loss.item(),
                     "uniform_ce": losses["uniform"][0], "seconds": round(time.perf_counter() - t0, 1)}
            if guided is not None:
                entry["flow_guided_ce"], entry["flow_guided_feat"] = losses["flow-guided"]
            log.append(entry)
            with (out / "log.jsonl").open("a") as f:
                f.write(json.dumps(entry) + "\n")
        if (step + 1) % 100 == 0 or step + 1 == cfg.steps:
            adaptive.eval()
            if guided is not None:
                guided.eval()
            save_propagation(out / "propagation.pt", cfg=cfg.prop, base=base, adaptive=adaptive, uniform=uniform,
                             flow_guided=guided, extra={"train_config": _jsonable(asdict(cfg)), "step": step + 1})
    if stream is not None:
        stream.close()
    atomic_save({"log": log}, out / "log.pt")
    return log[-1] if log else {}


def _jsonable(d: Any) -> Any:
    return json.loads(json.dumps(d))
