"""Choosing the learned kernels' sharpness after training (``lowlatseg train sharpness``; the
command writes the calibrated file with :func:`lowlatseg.propagation.weights.save_sharpened`).

The kernel predictors are trained with a cross-entropy and a feature-regression loss over pairs
up to 10 frames apart. Both reward hedging: where the predictor cannot tell the motion, a flat
kernel (the keyframe's features averaged over the taps) costs less than a wrong sharp one. At
inference the argmax label is what counts, and blurred features blur the labels: raising every
kernel to a power s > 1 and renormalising (``softmax(s * logits)``,
``PropagationConfig.sharpness``) gained 2-2.3 agreement points on two held-out clips for the
bundled file (docs/measurements.md). The right s depends on the file, so it is chosen per file,
on training clips, by the score that matters:

* for each clip (its first ``frames`` frames at network height ``size``, a keyframe every
  ``interval`` frames), the adaptive and flow-guided methods run with fusion at every s of
  ``grid``, scored by agreement mIoU with the per-frame network (as ``eval agreement``);
* per method, the s with the best mean over the clips is chosen (ties go to the smaller s); the
  command writes it into a copy of the propagation file (``OUT/propagation.pt``, the weights
  untouched, so it stays tied to the same base network) and the table beside it
  (``OUT/sharpness.json``) and into the file.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from lowlatseg.errors import ParameterError, UserError

if TYPE_CHECKING:
    from lowlatseg.propagation.methods import PropagationConfig

GRID = (1.0, 1.5, 2.0, 2.5, 3.0)
MAX_SHARPNESS = 20.0  # beyond this a kernel is its argmax tap already, and s * logits may overflow


@dataclass(frozen=True)
class SharpnessConfig:
    videos: tuple[str, ...]  # clips to choose on (training clips, never the ones you evaluate on)
    base: str | None = None  # base weights (None: bundled)
    propagation: str | None = None  # the file to calibrate (None: bundled)
    grid: tuple[float, ...] = GRID  # sharpness values tried (1: as trained)
    interval: int = 5  # keyframe every N frames, as the runtime's default
    frames: int = 150  # first frames of each clip
    size: str = "360"  # network input: a height keeping the aspect ratio, HxW, or native


def _check(cfg: SharpnessConfig) -> None:
    if not cfg.videos:
        raise ParameterError("{video} is missing: give the training clips to choose the sharpness on", "video")
    if not cfg.grid or any(not 0 < s <= MAX_SHARPNESS for s in cfg.grid):
        raise ParameterError(f"{{grid}} {list(cfg.grid)} must be numbers in (0, {MAX_SHARPNESS:g}], e.g. 1 1.5 2 3", "grid")
    if len({f"{s:g}" for s in cfg.grid}) != len(cfg.grid):
        raise ParameterError(f"{{grid}} {list(cfg.grid)} repeats a value; give each sharpness once", "grid")
    if cfg.frames < 2 * cfg.interval:
        raise ParameterError(f"{{frames}} {cfg.frames} must be at least twice the interval ({cfg.interval})", "frames")


def _sharpened(method: Any, s: float) -> Any:
    m = copy.deepcopy(method)
    m.predictor.sharpness = float(s)
    return m


def score_clip(video: str, cfg: SharpnessConfig, model: Any, methods: dict[str, Any], prop_cfg: PropagationConfig,
               progress: bool) -> dict[str, Any]:
    """Agreement of every method at every sharpness (and flow+fuse for scale) on one clip."""
    from lowlatseg.evaluation.commands.video import unlabelled_frames
    from lowlatseg.evaluation.video import Row, run_protocol
    from lowlatseg.io.video import VideoReader
    from lowlatseg.propagation.methods import FlowWarp
    from lowlatseg.runtime import network_size, parse_size

    rows = [Row("flow+fuse", FlowWarp.of(prop_cfg), True)]
    for name, method in methods.items():
        rows += [Row(f"{name} s{s:g}", _sharpened(method, s), True) for s in cfg.grid]
    reader = VideoReader(video)
    if reader.info.frames and reader.info.frames < 2 * cfg.interval:
        reader.close()
        raise UserError(f"{video} has {reader.info.frames} frames, fewer than two keyframe intervals ({2 * cfg.interval}); "
                        "drop it from the clips")
    hw = network_size((reader.info.height, reader.info.width), parse_size(cfg.size))
    bar = tqdm(total=cfg.frames, desc=f"sharpness {Path(video).name}", unit="frame", disable=not progress, leave=False)
    try:
        res = run_protocol(model, rows, unlabelled_frames(reader, hw, cfg.frames), interval=cfg.interval,
                           num_classes=model.config.num_classes, progress=bar.update)
    finally:
        bar.close()
        reader.close()
    miou = {r["method"]: r["miou"] for r in res.rows}
    return {"video": video, "frames": res.frames, "resolution": f"{hw[0]}x{hw[1]}", "flow+fuse": miou["flow+fuse"],
            **{name: {f"{s:g}": miou[f"{name} s{s:g}"] for s in cfg.grid} for name in methods}}


def choose(per_clip: list[dict[str, Any]], name: str, grid: tuple[float, ...]) -> tuple[float, dict[str, float]]:
    """The sharpness with the best mean agreement over the clips (ties: the smaller), and the means."""
    means = {f"{s:g}": round(float(np.mean([c[name][f"{s:g}"] for c in per_clip])), 2) for s in grid}
    best = max(sorted(grid), key=lambda s: (means[f"{s:g}"], -s))
    return float(best), means


@dataclass(frozen=True)
class SharpnessResult:
    """``chosen``: the sharpness per method (``adaptive``, and ``flow-guided`` when the file has it);
    ``means``: per method, the mean agreement over the clips at each value of the grid;
    ``clips``: per clip, every score (and ``flow+fuse`` for scale)."""

    chosen: dict[str, float]
    means: dict[str, dict[str, float]]
    clips: list[dict[str, Any]]
    config: SharpnessConfig
    model: Any  # the base network the file belongs to (SplitSegNet)

    def to_json(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "chosen": self.chosen, "mean_agreement": self.means,
                "flow+fuse_mean": round(float(np.mean([c["flow+fuse"] for c in self.clips])), 2),
                "score": "agreement mIoU with the per-frame network, fused rows", "clips": self.clips}


def calibrate_sharpness(cfg: SharpnessConfig, *, progress: bool = True) -> SharpnessResult:
    """Scores the grid on ``cfg.videos`` for the learned methods of the propagation file."""
    from lowlatseg.checkpoint import load_model
    from lowlatseg.propagation.weights import load_methods
    from lowlatseg.scheduling.policies import check_interval

    _check(cfg)
    check_interval(cfg.interval)
    missing = [v for v in cfg.videos if not Path(v).is_file()]
    if missing:
        raise ParameterError(f"{{video}} {missing[0]} does not exist; give readable video files", "video")
    model = load_model(cfg.base).eval()
    learned = load_methods(cfg.propagation, model)
    prop_cfg = learned.config
    methods: dict[str, Any] = {"adaptive": learned.adaptive}
    if learned.flow_guided is not None:
        methods["flow-guided"] = learned.flow_guided
    per_clip = [score_clip(video, cfg, model, methods, prop_cfg, progress)
                for video in tqdm(cfg.videos, desc="clips", unit="clip", disable=not progress)]
    chosen: dict[str, float] = {}
    means: dict[str, dict[str, float]] = {}
    for name in methods:
        chosen[name], means[name] = choose(per_clip, name, cfg.grid)
    return SharpnessResult(chosen, means, per_clip, cfg, model)
