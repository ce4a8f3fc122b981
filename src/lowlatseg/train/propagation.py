"""Training of the learned propagation methods (``lowlatseg train propagation``).

The base network is frozen (``low``, ``high`` and ``head`` in eval mode); the learned methods
(the adaptive kernel predictor, the uniform kernel, the flow-guided predictor and the
flow-residual correction: :data:`TRAINED`) are trained on pairs (keyframe, current frame) so
that ``head(propagate(F_h^k), F_l^t)`` labels the current frame well. ``start`` begins from a
propagation file instead of fresh methods; ``only`` then trains some of its methods (or adds one
it lacks) and keeps the others bit for bit. Each step's batch mixes:

(a) synthetic pairs from labelled CamVid stills (camera motion + moving objects, exact labels;
    :mod:`lowlatseg.data.synthetic`), gaps 1..10 frames at 30 fps;
(b) real unlabelled video (``--video`` files or every file of ``--video-dir``), streamed
    (:mod:`lowlatseg.data.video_pairs`: no video is held in memory whole), gaps 1..10 frames at
    30 fps scaled by each clip's own rate, labelled by the per-frame network (the teacher) on the
    current frame: distillation of the per-frame network.

Loss = the distillation term (``loss``: cross-entropy against the labels, or the KL divergence
to the teacher's class distribution) + ``feature_weight`` x MSE between the propagated
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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from lowlatseg.checkpoint import atomic_save, load_companion, load_model
from lowlatseg.classes import IGNORE_INDEX
from lowlatseg.data.camvid import camvid
from lowlatseg.data.pairs import PairSampler
from lowlatseg.data.synthetic import MotionConfig
from lowlatseg.data.transforms import to_tensor
from lowlatseg.errors import ParameterError, UserError
from lowlatseg.data.video_pairs import VideoPairStream, check_videos
from lowlatseg.defaults import TRAINED_METHODS as TRAINED
from lowlatseg.propagation.flow import DISFlow
from lowlatseg.propagation.flow_guided import FlowGuided
from lowlatseg.propagation.flow_residual import FlowResidual
from lowlatseg.propagation.flow_kernels import flow_kernels, kernel_cross_entropy
from lowlatseg.propagation.methods import Adaptive, Current, KeyState, PropagationConfig, Uniform, grid_flow
from lowlatseg.propagation.svconv import sv_conv
from lowlatseg.propagation.weights import DEFAULT_PROPAGATION, PROP_FORMAT, save_propagation, saved_config
from lowlatseg.train.runs import start_run, write_config


LOSSES = ("ce", "kl")


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
    flow_residual: bool = True  # also train the flow-residual method (propagation/flow_residual.py)
    # "ce": cross-entropy against the labels (the stills' own, the teacher's argmax on video); "kl": the
    # KL divergence to the teacher's class distribution on every pair (soft distillation). Hard labels
    # reward hedged logits, which lowers the loss but moves the argmax (docs/measurements.md)
    loss: str = "ce"
    lr: float = 2e-3  # AdamW, cosine decay to 0
    feature_weight: float = 0.5  # weight of the feature-distillation term
    kernel_weight: float = 0.0  # weight of the adaptive kernels' flow-kernel target (0: off; it did not pay, docs/measurements.md)
    kernel_flow_preset: str = "medium"  # DIS preset of that target's flow (training only)
    crop: tuple[int, int] = (360, 480)  # H, W of training pairs
    seed: int = 0
    prop: PropagationConfig = field(default_factory=PropagationConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    # a propagation file to start from: its config (``prop`` is then unused) and the weights of the
    # methods it holds; with ``only``, just those methods train and the others are kept as they are
    start: str | None = None
    only: tuple[str, ...] = ()


def check_methods(cfg: PropTrainConfig) -> None:
    """Refuses a selection of methods that cannot be honoured, by name."""
    if cfg.loss not in LOSSES:
        raise UserError(f"unknown loss {cfg.loss!r}; choose one of: {', '.join(LOSSES)}")
    unknown = [m for m in cfg.only if m not in TRAINED]
    if unknown:
        raise UserError(f"unknown method {unknown[0]!r} to train; choose from: {', '.join(TRAINED)}")
    if cfg.only and cfg.start is None:
        raise ParameterError("{only} keeps the other methods of a file as they are, so it needs {start} FILE "
                             "(the propagation file to keep them from)", "only", "start")
    off = [m for m in cfg.only if m in _switched_off(cfg)]
    if off:
        raise UserError(f"{off[0]} is both switched off and asked to train; drop one of the two flags")
    if cfg.start is not None and cfg.prop != PropagationConfig():
        raise ParameterError("{start} trains on the file's own propagation config; leave the propagation config at its "
                             "defaults", "start")


def _switched_off(cfg: PropTrainConfig) -> set[str]:
    return {m for m, on in (("flow-guided", cfg.flow_guided), ("flow-residual", cfg.flow_residual)) if not on}


def build_methods(cfg: PropTrainConfig, base: Any) -> tuple[PropagationConfig, dict[str, Any], set[str], dict[str, Any]]:
    """(propagation config, the learned methods by name, the names this run trains, what the start
    file holds). Without ``start``: fresh methods on ``cfg.prop``; with it: the file's config and
    weights, except that a kernel method trained again starts at sharpness 1 (it is trained as
    it will be calibrated: with ``train sharpness`` afterwards)."""
    prop_cfg, saved = cfg.prop, {}
    if cfg.start is not None:
        saved = start_file(cfg.start, base)
        prop_cfg = saved_config(saved)
    # trained: ``only``, or all but the switched-off ones; the new file holds those, the start
    # file's others (kept as they are) and always the paper's two
    trained = set(cfg.only) if cfg.only else set(TRAINED) - _switched_off(cfg)
    present = trained | {m for m in TRAINED if m.replace("-", "_") in saved} | {"adaptive", "uniform"}
    if "adaptive" in trained:
        prop_cfg = replace(prop_cfg, sharpness=1.0)
    if "flow-guided" in trained:
        prop_cfg = replace(prop_cfg, guided_sharpness=1.0)
    makers = {"adaptive": lambda: Adaptive(prop_cfg, low_ch=base.config.low_ch), "uniform": lambda: Uniform(prop_cfg),
              "flow-guided": lambda: FlowGuided(prop_cfg, low_ch=base.config.low_ch),
              "flow-residual": lambda: FlowResidual(prop_cfg, low_ch=base.config.low_ch, learned_ch=base.learned_low_ch,
                                                    high_ch=base.config.high_ch)}
    methods: dict[str, Any] = {}
    for name in TRAINED:
        if name in present:
            methods[name] = makers[name]()
            if name.replace("-", "_") in saved:
                methods[name].load_state_dict(saved[name.replace("-", "_")], strict=True)
    return prop_cfg, methods, trained, saved


def start_file(path: str, base: Any) -> dict[str, Any]:
    """The propagation file a run starts from, its errors naming this command's flags."""
    try:
        return load_companion(path, DEFAULT_PROPAGATION, fmt=PROP_FORMAT, kind="propagation", base=base)
    except ParameterError:  # trained for another base network
        raise ParameterError(f"the {{start}} file {path} was trained for another base network; pass the {{base}} it was "
                             "trained on, or start without it", "start", "base") from None
    except UserError as e:
        raise ParameterError(f"the {{start}} file cannot be used: {e}", "start") from None


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


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, kind: str) -> torch.Tensor:
    """B x K x H x W logits against the labels (B x H x W, ``ce``) or the teacher's distribution (``kl``)."""
    if kind == "kl":
        log_p = F.log_softmax(logits, dim=1)
        log_q = F.log_softmax(teacher_logits, dim=1)
        return F.kl_div(log_p, log_q, log_target=True, reduction="none").sum(1).mean()
    return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)


def train_propagation(cfg: PropTrainConfig, out: Path, *, progress: bool = True) -> dict[str, Any]:
    """Trains the learned methods (all of them, or ``cfg.only``); writes ``out/propagation.pt``."""
    check_methods(cfg)
    rng = start_run(cfg, out)

    # 1. frozen base network and the learned methods
    base = load_model(cfg.base)
    for p in base.parameters():
        p.requires_grad_(False)
    prop_cfg, methods, names, saved = build_methods(cfg, base)
    trained = {n: m for n, m in methods.items() if n in names}
    for name, method in methods.items():
        method.requires_grad_(name in trained)
        method.eval()
    params = [p for m in trained.values() for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.05)

    # 2. data: stills (cached) and streamed real video
    stills = camvid(cfg.data, cfg.split)
    donors = [stills[i] for i in range(0, len(stills), 7)]
    stream = video_stream(cfg.videos, crop=cfg.crop, max_gap_30=cfg.max_video_gap, fraction=cfg.video_fraction)

    target_flow = DISFlow(cfg.kernel_flow_preset) if cfg.kernel_weight > 0 and "adaptive" in trained else None
    write_config(replace(cfg, prop=prop_cfg), out)  # the inputs checked: now the run folder (with the config trained)
    ch, cw = cfg.crop
    pairs = PairSampler(stills, donors, [], cfg.motion, cfg.crop, cfg.video_fraction, cfg.max_video_gap, min_gap=1,
                        flip=True, stream=stream)
    # a file started from keeps its sharpness note while no kernel method is retrained
    keep_note = {k: saved[k] for k in ("sharpness_calibration",) if k in saved and not {"adaptive", "flow-guided"} & set(trained)}
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
            teacher_logits = base.head(fh_c, fl_c, (ch, cw))
            teacher = teacher_logits.argmax(1)
        y = torch.stack([teacher[i] if lab is None else torch.from_numpy(np.ascontiguousarray(lab)).long()
                         for i, lab in enumerate(labels)])
        key = KeyState(index=0, image=xk, f_low=fl_k, f_high=fh_k)
        cur = Current(index=1, image=xc, f_low=fl_c)
        var = fh_c.var().clamp_min(1e-6)

        # 5. the trained methods, same loss (the adaptive one with its flow-kernel target too)
        kernel_loss = torch.zeros(())
        adaptive_prop = None
        if target_flow is not None:  # where the flow says each location's content came from, on the tap grid
            adaptive = methods["adaptive"]
            target = flow_kernels(grid_flow(target_flow, key, cur, (fl_c.shape[-2], fl_c.shape[-1])),
                                  prop_cfg.kernel_size, prop_cfg.dilation)
            adaptive.train()
            log_w = torch.log_softmax(adaptive.predictor.logits(fl_k, fl_c), dim=1)
            kernel_loss = kernel_cross_entropy(log_w, target)
            # the same kernels move the features (one predictor pass a step, as without the target)
            adaptive_prop = sv_conv(fh_k, log_w.exp(), kernel_size=prop_cfg.kernel_size, dilation=prop_cfg.dilation)
        losses = {}
        total = torch.zeros(())
        for name, method in trained.items():
            method.train()
            prop = adaptive_prop if name == "adaptive" and adaptive_prop is not None else method.propagate(key, cur)
            logits = base.head(prop, fl_c, (ch, cw))
            ce = distillation_loss(logits, teacher_logits, y, cfg.loss)
            feat = F.mse_loss(prop, fh_c) / var
            loss = ce + cfg.feature_weight * feat + (cfg.kernel_weight * kernel_loss if name == "adaptive" else 0.0)
            total = total + loss
            losses[name] = (ce.item(), feat.item())
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        sched.step()
        bar.set_postfix({name: f"{v[0]:.3f}" for name, v in losses.items()})
        if (step + 1) % 20 == 0 or step + 1 == cfg.steps:
            entry: dict[str, Any] = {"step": step + 1}
            for name, (ce_v, feat_v) in losses.items():
                # named by the loss: adaptive_ce (hard labels) or adaptive_kl
                entry[f"{name.replace('-', '_')}_{cfg.loss}"], entry[f"{name.replace('-', '_')}_feat"] = ce_v, feat_v
            if target_flow is not None:
                entry["adaptive_kernel"] = kernel_loss.item()
            entry["seconds"] = round(time.perf_counter() - t0, 1)
            log.append(entry)
            with (out / "log.jsonl").open("a") as f:
                f.write(json.dumps(entry) + "\n")
        if (step + 1) % 100 == 0 or step + 1 == cfg.steps:
            for method in trained.values():
                method.eval()
            save_propagation(out / "propagation.pt", cfg=prop_cfg, base=base, adaptive=methods["adaptive"],
                             uniform=methods["uniform"], flow_guided=methods.get("flow-guided"),
                             flow_residual=methods.get("flow-residual"),
                             extra={"train_config": _jsonable(asdict(replace(cfg, prop=prop_cfg))), "step": step + 1,
                                    **keep_note})
    if stream is not None:
        stream.close()
    atomic_save({"log": log}, out / "log.pt")
    return log[-1] if log else {}


def _jsonable(d: Any) -> Any:
    return json.loads(json.dumps(d))
