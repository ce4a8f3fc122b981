"""Propagation weight files: the learned methods (adaptive predictor, uniform kernel, and the
flow-guided predictor and flow-residual correction in files that have them), their
config, and the fingerprint of the base network they were trained on."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from lowlatseg import __version__
from lowlatseg.checkpoint import atomic_save, fingerprint, load_companion
from lowlatseg.errors import UserError
from lowlatseg.nn.splitnet import SplitSegNet
from lowlatseg.propagation.flow_guided import FlowGuided
from lowlatseg.propagation.flow_residual import FlowResidual
from lowlatseg.propagation.methods import Adaptive, FlowWarp, PropagationConfig, Propagator, Uniform

PROP_FORMAT = "lowlatseg/propagation-v1"
DEFAULT_PROPAGATION = Path(__file__).resolve().parents[1] / "weights" / "propagation_llnet_e_camvid.pt"
# what files written before a config field existed were built with (their saved config lacks it):
# a centre logit of 3 (centre_weight None) and the coarse correlation
LEGACY_CONFIG: dict[str, Any] = {"centre_weight": None, "full_correlation": False}


def saved_config(obj: dict[str, Any]) -> PropagationConfig:
    """The config a propagation file was trained with, older files' missing fields as they were;
    a field this version does not know (a file from a newer version) is a clear error."""
    saved = obj["prop_config"]
    unknown = sorted(set(saved) - {f.name for f in fields(PropagationConfig)})
    if unknown:
        raise UserError(f"the propagation file holds settings this lowlatseg {__version__} does not know ({', '.join(unknown)}): "
                        "it was written by a newer version; upgrade lowlatseg or retrain with 'lowlatseg train propagation'")
    return PropagationConfig(**{**LEGACY_CONFIG, **saved})


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


@dataclass(frozen=True)
class LearnedMethods:
    """Every learned method of one propagation file, in eval mode; the optional ones are None
    when the file has none (older files)."""

    config: PropagationConfig
    adaptive: Adaptive
    uniform: Uniform
    flow_guided: FlowGuided | None
    flow_residual: FlowResidual | None

    def by_name(self, name: str) -> Adaptive | FlowGuided | FlowResidual | None:
        """The learned runtime-selectable method ``name`` (``PROPAGATION_METHODS``), None if the file
        has none or ``name`` is not learned (``flow``)."""
        return {"adaptive": self.adaptive, "flow-guided": self.flow_guided, "flow-residual": self.flow_residual}.get(name)

    def runtime_method(self, name: str) -> Propagator:
        """The runtime propagation method ``name``: ``flow`` (DIS flow, no weights) or this file's
        learned one; a file without it is refused by name."""
        if name == "flow":
            return FlowWarp.runtime()
        method = self.by_name(name)
        if method is None:
            raise UserError(f"this propagation file has no {name} method; add it with 'lowlatseg train propagation "
                            f"--start FILE --only {name}', or use the adaptive method or flow (no weights)")
        return method


def runtime_propagator(path: str | Path | None, base: SplitSegNet, name: str) -> Propagator:
    """The runtime propagation method ``name`` for ``base``: ``flow`` without reading any file, a
    learned one from the propagation file ``path`` (None: bundled)."""
    if name == "flow":
        return FlowWarp.runtime()
    return load_methods(path, base).runtime_method(name)


M = TypeVar("M", bound=nn.Module)


def _loaded(method: M, state: dict[str, Any]) -> M:
    method.load_state_dict(state, strict=True)
    return method.eval()


def load_methods(path: str | Path | None, base: SplitSegNet) -> LearnedMethods:
    """The learned methods for ``base`` from one read of the file; refuses a file trained for
    another base network."""
    obj = load_companion(path, DEFAULT_PROPAGATION, fmt=PROP_FORMAT, kind="propagation", base=base)
    cfg = saved_config(obj)
    c = base.config
    guided = _loaded(FlowGuided(cfg, low_ch=c.low_ch), obj["flow_guided"]) if "flow_guided" in obj else None
    residual = (_loaded(FlowResidual(cfg, low_ch=c.low_ch, learned_ch=base.learned_low_ch, high_ch=c.high_ch),
                        obj["flow_residual"]) if "flow_residual" in obj else None)
    return LearnedMethods(cfg, _loaded(Adaptive(cfg, low_ch=c.low_ch), obj["adaptive"]), _loaded(Uniform(cfg), obj["uniform"]),
                          guided, residual)


def load_propagation(path: str | Path | None, base: SplitSegNet) -> tuple[PropagationConfig, Adaptive, Uniform]:
    """The paper's learned methods for ``base`` (see :func:`load_methods`)."""
    m = load_methods(path, base)
    return m.config, m.adaptive, m.uniform


def load_flow_guided(path: str | Path | None, base: SplitSegNet) -> FlowGuided | None:
    """The flow-guided method of a propagation file, or None when the file has none (older files)."""
    return load_methods(path, base).flow_guided


def load_flow_residual(path: str | Path | None, base: SplitSegNet) -> FlowResidual | None:
    """The flow-residual method of a propagation file, or None when the file has none (older files)."""
    return load_methods(path, base).flow_residual


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


__all__ = ["fingerprint", "save_propagation", "load_propagation", "load_flow_guided", "load_flow_residual", "load_methods", "runtime_propagator", "LearnedMethods", "save_sharpened", "DEFAULT_PROPAGATION"]
