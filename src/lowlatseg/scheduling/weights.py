"""Scheduler weight files: the deviation predictor, its config, a default threshold, and the
fingerprint of the base network it was trained for."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from lowlatseg.checkpoint import atomic_save
from lowlatseg.errors import UserError
from lowlatseg.nn.splitnet import SplitSegNet
from lowlatseg.propagation.weights import fingerprint
from lowlatseg.scheduling.predictor import DeviationConfig, DeviationPredictor

SCHED_FORMAT = "lowlatseg/scheduler-v1"
DEFAULT_SCHEDULER = Path(__file__).resolve().parents[1] / "weights" / "scheduler_llnet_s_camvid.pt"


def save_scheduler(path: Path, *, predictor: DeviationPredictor, base: SplitSegNet, threshold: float,
                   extra: dict[str, Any] | None = None) -> None:
    obj = {"format": SCHED_FORMAT, "config": asdict(predictor.config), "state": predictor.state_dict(),
           "base_fingerprint": fingerprint(base), "base_arch": base.config.arch, "default_threshold": threshold}
    obj.update(extra or {})
    atomic_save(obj, path)


def load_scheduler(path: str | Path | None, base: SplitSegNet) -> tuple[DeviationPredictor, float]:
    """(predictor in eval mode, default threshold) for ``base``."""
    p = Path(path) if path is not None else DEFAULT_SCHEDULER
    if not p.is_file():
        what = "the bundled scheduler weights" if path is None else "scheduler weights"
        raise UserError(f"{what} {p} do not exist; pass --scheduler with a file from 'lowlatseg train scheduler' or use --mode fixed")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"scheduler weights {p} cannot be read ({type(e).__name__}); the file is corrupt") from None
    if not isinstance(obj, dict) or obj.get("format") != SCHED_FORMAT:
        raise UserError(f"{p} is not a lowlatseg scheduler file; pass one written by 'lowlatseg train scheduler'")
    if obj["base_fingerprint"] != fingerprint(base):
        raise UserError(f"{p} was trained for other base weights ({obj['base_arch']} {obj['base_fingerprint']}); "
                        "pass the matching --weights or retrain with 'lowlatseg train scheduler'")
    pred = DeviationPredictor(DeviationConfig(**obj["config"]))
    pred.load_state_dict(obj["state"], strict=True)
    return pred.eval(), float(obj["default_threshold"])
