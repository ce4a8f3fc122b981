"""Propagation weight files: the learned methods (adaptive predictor, uniform kernel), their
config, and the fingerprint of the base network they were trained on."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from lowlatseg.checkpoint import atomic_save
from lowlatseg.errors import UserError
from lowlatseg.nn.splitnet import SplitSegNet
from lowlatseg.propagation.methods import Adaptive, PropagationConfig, Uniform

PROP_FORMAT = "lowlatseg/propagation-v1"
DEFAULT_PROPAGATION = Path(__file__).resolve().parents[1] / "weights" / "propagation_llnet_s_camvid.pt"


def fingerprint(model: SplitSegNet) -> str:
    """Short hash of the base network's weights (rounded to float16, as shipped)."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        t = v.detach().to(torch.float16) if v.is_floating_point() else v.detach()
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def save_propagation(path: Path, *, cfg: PropagationConfig, base: SplitSegNet, adaptive: Adaptive, uniform: Uniform,
                     extra: dict[str, Any] | None = None) -> None:
    obj = {
        "format": PROP_FORMAT, "prop_config": asdict(cfg), "base_arch": base.config.arch,
        "base_fingerprint": fingerprint(base), "low_ch": base.config.low_ch,
        "adaptive": adaptive.state_dict(), "uniform": uniform.state_dict(),
    }
    obj.update(extra or {})
    atomic_save(obj, path)


def load_propagation(path: str | Path | None, base: SplitSegNet) -> tuple[PropagationConfig, Adaptive, Uniform]:
    """Learned methods for ``base``; refuses a file trained for another base network."""
    source = Path(path) if path is not None else DEFAULT_PROPAGATION
    if path is None and not source.is_file():
        raise UserError(f"the bundled propagation weights {source} are missing; reinstall lowlatseg or pass --propagation")
    p = Path(source)
    if not p.is_file():
        raise UserError(f"propagation weights {p} do not exist; pass a file written by 'lowlatseg train propagation'")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"propagation weights {p} cannot be read ({type(e).__name__}); the file is corrupt") from None
    if not isinstance(obj, dict) or obj.get("format") != PROP_FORMAT:
        raise UserError(f"{p} is not a lowlatseg propagation file; pass one written by 'lowlatseg train propagation'")
    fp = fingerprint(base)
    if obj["base_fingerprint"] != fp:
        raise UserError(
            f"{p} was trained for base weights {obj['base_fingerprint']} ({obj['base_arch']}), not the base model in use "
            f"({fp}, {base.config.arch}); pass the matching --weights or retrain with 'lowlatseg train propagation'"
        )
    cfg = PropagationConfig(**obj["prop_config"])
    adaptive, uniform = Adaptive(cfg, low_ch=base.config.low_ch), Uniform(cfg)
    adaptive.load_state_dict(obj["adaptive"], strict=True)
    uniform.load_state_dict(obj["uniform"], strict=True)
    return cfg, adaptive.eval(), uniform.eval()


__all__ = ["fingerprint", "save_propagation", "load_propagation", "DEFAULT_PROPAGATION"]
