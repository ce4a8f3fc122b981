"""Propagation weight files: the learned methods (adaptive predictor, uniform kernel, and the
flow-guided predictor and flow-residual correction in files that have them), their
config, and the fingerprint of the base network they were trained on."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from lowlatseg.checkpoint import atomic_save, fingerprint, load_companion
from lowlatseg.nn.splitnet import SplitSegNet
from lowlatseg.propagation.flow_guided import FlowGuided
from lowlatseg.propagation.flow_residual import FlowResidual
from lowlatseg.propagation.methods import Adaptive, PropagationConfig, Uniform

PROP_FORMAT = "lowlatseg/propagation-v1"
DEFAULT_PROPAGATION = Path(__file__).resolve().parents[1] / "weights" / "propagation_llnet_e_camvid.pt"
# what files written before a config field existed were built with (their saved config lacks it):
# a centre logit of 3 (centre_weight None) and the coarse correlation
LEGACY_CONFIG: dict[str, Any] = {"centre_weight": None, "full_correlation": False}


def saved_config(obj: dict[str, Any]) -> PropagationConfig:
    """The config a propagation file was trained with, older files' missing fields as they were."""
    return PropagationConfig(**{**LEGACY_CONFIG, **obj["prop_config"]})


def save_propagation(path: Path, *, cfg: PropagationConfig, base: SplitSegNet, adaptive: Adaptive, uniform: Uniform,
                     flow_guided: FlowGuided | None = None, flow_residual: FlowResidual | None = None,
                     extra: dict[str, Any] | None = None) -> None:
    obj = {
        "format": PROP_FORMAT, "prop_config": asdict(cfg), "base_arch": base.config.arch,
        "base_fingerprint": fingerprint(base), "low_ch": base.config.low_ch,
        "adaptive": adaptive.state_dict(), "uniform": uniform.state_dict(),
    }
    if flow_guided is not None:
        obj["flow_guided"] = flow_guided.state_dict()
    if flow_residual is not None:
        obj["flow_residual"] = flow_residual.state_dict()
    obj.update(extra or {})
    atomic_save(obj, path)


def load_propagation(path: str | Path | None, base: SplitSegNet) -> tuple[PropagationConfig, Adaptive, Uniform]:
    """Learned methods for ``base``; refuses a file trained for another base network."""
    obj = load_companion(path, DEFAULT_PROPAGATION, fmt=PROP_FORMAT, kind="propagation", base=base)
    cfg = saved_config(obj)
    adaptive, uniform = Adaptive(cfg, low_ch=base.config.low_ch), Uniform(cfg)
    adaptive.load_state_dict(obj["adaptive"], strict=True)
    uniform.load_state_dict(obj["uniform"], strict=True)
    return cfg, adaptive.eval(), uniform.eval()


def load_flow_guided(path: str | Path | None, base: SplitSegNet) -> FlowGuided | None:
    """The flow-guided method of a propagation file, or None when the file has none (older files)."""
    obj = load_companion(path, DEFAULT_PROPAGATION, fmt=PROP_FORMAT, kind="propagation", base=base)
    if "flow_guided" not in obj:
        return None
    method = FlowGuided(saved_config(obj), low_ch=base.config.low_ch)
    method.load_state_dict(obj["flow_guided"], strict=True)
    return method.eval()


def load_flow_residual(path: str | Path | None, base: SplitSegNet) -> FlowResidual | None:
    """The flow-residual method of a propagation file, or None when the file has none (older files)."""
    obj = load_companion(path, DEFAULT_PROPAGATION, fmt=PROP_FORMAT, kind="propagation", base=base)
    if "flow_residual" not in obj:
        return None
    method = FlowResidual(saved_config(obj), low_ch=base.config.low_ch, learned_ch=base.learned_low_ch,
                          high_ch=base.config.high_ch)
    method.load_state_dict(obj["flow_residual"], strict=True)
    return method.eval()


def save_sharpened(src: str | Path | None, base: SplitSegNet, out: Path, *, sharpness: float,
                   guided_sharpness: float | None = None, note: str = "") -> PropagationConfig:
    """A copy of the propagation file ``src`` (None: bundled) for ``base`` whose config holds the
    given kernel sharpness (``guided_sharpness`` None: unchanged); weights untouched. ``note`` (the
    table the values were chosen from) is stored as ``sharpness_calibration``."""
    obj = load_companion(src, DEFAULT_PROPAGATION, fmt=PROP_FORMAT, kind="propagation", base=base)
    cfg = saved_config(obj)
    cfg = replace(cfg, sharpness=sharpness, guided_sharpness=cfg.guided_sharpness if guided_sharpness is None else guided_sharpness)
    atomic_save({**obj, "prop_config": asdict(cfg), "sharpness_calibration": note}, out)
    return cfg


__all__ = ["fingerprint", "save_propagation", "load_propagation", "load_flow_guided", "load_flow_residual", "save_sharpened", "DEFAULT_PROPAGATION"]
