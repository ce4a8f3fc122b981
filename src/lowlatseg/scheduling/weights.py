"""Scheduler weight files: the deviation predictor (learned weights, or none for ``warp-error``), its config, its default rule and numbers
(a threshold for the instant rule, a budget for the accumulated rule, both calibrated for one
keyframe rate), and the fingerprint of the base network it was trained for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lowlatseg.checkpoint import atomic_save, fingerprint, load_companion
from lowlatseg.errors import ParameterError, UserError
from lowlatseg.nn.splitnet import SplitSegNet
from lowlatseg.scheduling.predictor import Predictor, build_predictor, config_from, saved_config
from lowlatseg.scheduling.rules import AdaptiveRule, as_rule
from lowlatseg.scheduling.targets import check_target, pair_weights

SCHED_FORMAT = "lowlatseg/scheduler-v1"
DEFAULT_SCHEDULER = Path(__file__).resolve().parents[1] / "weights" / "scheduler_llnet_e_camvid.pt"


@dataclass(frozen=True)
class SchedulerDefaults:
    """What ``--mode adaptive`` uses when neither ``--threshold`` nor ``--budget`` is given."""

    rule: str  # the default rule's name, as stored: 'instant' or 'accumulated' (scheduling/rules.py)
    threshold: float  # instant rule: predicted deviation in [0, 1]
    budget: float | None  # accumulated rule: summed predicted deviation (None: not calibrated)
    target: str = "pixels"  # what the predictor learned (scheduling/targets.py); files before 2026-12-07: pixels
    class_frequencies: tuple[float, ...] | None = None  # class-weighted: the training labels' class shares it weighed by

    def value(self, rule: AdaptiveRule | str) -> float:
        """The stored number of ``rule`` (scheduling/rules.py: its ``number`` names the field)."""
        v = getattr(self, as_rule(rule).number)
        if v is None:
            raise ParameterError("this scheduler file has no default budget; pass {budget} or {threshold}", "budget", "threshold")
        return v

    def target_weights(self) -> torch.Tensor | None:
        """The C x C weights of the deviation the predictor learned (None: the pixel share), for
        the oracles that replay the rule on the true value of what the predictor predicts."""
        if self.target == "pixels":
            return None
        if self.class_frequencies is None:
            raise UserError(f"the scheduler file learned a {self.target} deviation but stores no class frequencies; retrain it")
        return pair_weights(self.class_frequencies)


def save_scheduler(path: Path, *, predictor: Predictor, base: SplitSegNet, threshold: float,
                   budget: float | None = None, rule: str = "instant", extra: dict[str, Any] | None = None) -> None:
    obj = {"format": SCHED_FORMAT, "config": saved_config(predictor.config), "state": predictor.state_dict(),
           "base_fingerprint": fingerprint(base), "base_arch": base.config.arch, "default_threshold": threshold,
           "default_budget": budget, "default_rule": rule}
    obj.update(extra or {})
    atomic_save(obj, path)


def load_scheduler(path: str | Path | None, base: SplitSegNet) -> tuple[Predictor, SchedulerDefaults]:
    """(predictor in eval mode, default rule and numbers) for ``base``."""
    obj = load_companion(path, DEFAULT_SCHEDULER, fmt=SCHED_FORMAT, kind="scheduler", base=base,
                         hint=" or use --mode fixed")
    pred = build_predictor(config_from(obj["config"]))
    pred.load_state_dict(obj["state"], strict=True)
    budget = obj.get("default_budget")
    freq = obj.get("class_frequencies")
    if freq is not None and len(freq) != base.config.num_classes:
        raise UserError(f"the scheduler file weighs {len(freq)} classes but the network predicts {base.config.num_classes}; "
                        "use a scheduler trained for this network")
    defaults = SchedulerDefaults(rule=str(obj.get("default_rule", "instant")), threshold=float(obj["default_threshold"]),
                                 budget=None if budget is None else float(budget),
                                 target=check_target(str(obj.get("deviation_target", "pixels"))),
                                 class_frequencies=None if freq is None else tuple(float(f) for f in freq))
    return pred.eval(), defaults
