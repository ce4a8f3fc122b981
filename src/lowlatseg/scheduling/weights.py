"""Scheduler weight files: the deviation predictor (learned weights, or none for ``warp-error``), its config, its default rule and numbers
(a threshold for the instant rule, a budget for the accumulated rule, both calibrated for one
keyframe rate), and the fingerprint of the base network it was trained for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lowlatseg.checkpoint import atomic_save, fingerprint, load_companion
from lowlatseg.errors import ParameterError
from lowlatseg.nn.splitnet import SplitSegNet
from lowlatseg.scheduling.predictor import Predictor, build_predictor, config_from, saved_config
from lowlatseg.scheduling.rules import AdaptiveRule, as_rule

SCHED_FORMAT = "lowlatseg/scheduler-v1"
DEFAULT_SCHEDULER = Path(__file__).resolve().parents[1] / "weights" / "scheduler_llnet_e_camvid.pt"


@dataclass(frozen=True)
class SchedulerDefaults:
    """What ``--mode adaptive`` uses when neither ``--threshold`` nor ``--budget`` is given."""

    rule: str  # the default rule's name, as stored: 'instant' or 'accumulated' (scheduling/rules.py)
    threshold: float  # instant rule: predicted deviation in [0, 1]
    budget: float | None  # accumulated rule: summed predicted deviation (None: not calibrated)

    def value(self, rule: AdaptiveRule | str) -> float:
        """The stored number of ``rule`` (scheduling/rules.py: its ``number`` names the field)."""
        v = getattr(self, as_rule(rule).number)
        if v is None:
            raise ParameterError("this scheduler file has no default budget; pass {budget} or {threshold}", "budget", "threshold")
        return v


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
    defaults = SchedulerDefaults(rule=str(obj.get("default_rule", "instant")), threshold=float(obj["default_threshold"]),
                                 budget=None if budget is None else float(budget))
    return pred.eval(), defaults
