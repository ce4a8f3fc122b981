"""Scheduler weight files: the deviation predictor, its config, a default threshold, and the
fingerprint of the base network it was trained for."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from lowlatseg.checkpoint import atomic_save, fingerprint, load_companion
from lowlatseg.nn.splitnet import SplitSegNet
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
    obj = load_companion(path, DEFAULT_SCHEDULER, fmt=SCHED_FORMAT, kind="scheduler", base=base,
                         hint=" or use --mode fixed")
    pred = DeviationPredictor(DeviationConfig(**obj["config"]))
    pred.load_state_dict(obj["state"], strict=True)
    return pred.eval(), float(obj["default_threshold"])
