"""Checkpoints and weight files: they carry the config that made them and load strictly.

Two kinds of file, both ``torch.save`` dicts with a ``format`` tag:

* run checkpoints (``RUN_DIR/last.pt``): model, optimizer, epoch, history, configs; for resume.
* weight files (``*.pt`` under ``lowlatseg/weights`` or exported with ``export_weights``):
  the network config and a float16 state dict, a few MB; what inference loads. With
  ``int8=True`` the convolution weights are stored as int8 with one float32 scale per output
  channel (symmetric, round to nearest) and everything else as float16: about half the size.
  Loading dequantises to float32, so inference code never sees the difference.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from lowlatseg.errors import ParameterError, UserError
from lowlatseg.nn.builders import build
from lowlatseg.nn.splitnet import SplitNetConfig, SplitSegNet

RUN_FORMAT = "lowlatseg/run-v1"
WEIGHTS_FORMAT = "lowlatseg/weights-v1"
DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "llnet_e_camvid.pt"


# smaller per-frame operating points of every bundled network (besides the clip's size); 192x256: at
# that size the default network is still about as accurate per frame as its low-latency mode at
# 360x480 (63.2 against 62.9 on the val clip), so a user could pick it instead (docs/measurements.md)
LADDER_SIZES = ((192, 256), (240, 320), (288, 384))


def bundled_models() -> list[Path]:
    """The segmentation networks shipped in ``lowlatseg/weights`` (not their companions), default first."""
    found = sorted(p for p in DEFAULT_WEIGHTS.parent.glob("*.pt") if not p.name.startswith(("propagation_", "scheduler_")))
    return sorted(found, key=lambda p: p != DEFAULT_WEIGHTS)


def atomic_save(obj: Any, path: Path) -> None:
    """Write to a temporary file then rename, so an interruption never leaves a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"checkpoint {p} does not exist; pass a weights file or a run folder's last.pt")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds on corrupt files
        raise UserError(f"checkpoint {p} cannot be read ({type(e).__name__}); it is corrupt or not a lowlatseg file") from None
    kind = obj.get("format") if isinstance(obj, dict) else None
    if isinstance(kind, str) and kind.startswith("lowlatseg/") and kind not in (RUN_FORMAT, WEIGHTS_FORMAT):
        what = kind.removeprefix("lowlatseg/").split("-v")[0]  # propagation / scheduler
        raise UserError(f"{p} holds {what} weights, not a segmentation model; pass it with --{what}, and a model "
                        "file (or a run folder's last.pt) as the model")
    if kind not in (RUN_FORMAT, WEIGHTS_FORMAT):
        raise UserError(f"{p} is not a lowlatseg checkpoint; pass a file written by 'lowlatseg train'")
    return obj


def export_weights(model: SplitSegNet, path: Path, *, meta: dict[str, Any] | None = None, int8: bool = False) -> None:
    """Save a compact weights file for inference (float16; ``int8``: conv weights as int8)."""
    state: dict[str, torch.Tensor] = {}
    quant: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if int8 and v.is_floating_point() and v.dim() == 4 and v.numel() >= 1024:
            scale = v.abs().amax(dim=(1, 2, 3)).clamp_min(1e-12).float() / 127.0  # out_ch
            quant[k] = {"q": torch.round(v / scale.view(-1, 1, 1, 1)).clamp(-127, 127).to(torch.int8), "scale": scale}
        else:
            state[k] = v.half() if v.is_floating_point() else v
    atomic_save({"format": WEIGHTS_FORMAT, "net_config": asdict(model.config), "model": state, "int8": quant,
                 "meta": meta or {}}, path)


def net_config_from(obj: dict[str, Any], source: str | Path) -> SplitNetConfig:
    try:
        cfg = dict(obj["net_config"])
        cfg["stem_ch"] = tuple(cfg["stem_ch"])
        cfg["mid_dilations"] = tuple(cfg.get("mid_dilations", ()))
        return SplitNetConfig(**cfg)
    except (KeyError, TypeError) as e:
        raise UserError(f"{source} has no valid network config ({e}); it was written by another program or version") from None


def load_model(path: str | Path | None = None, *, expect: SplitNetConfig | None = None) -> SplitSegNet:
    """The network of a weights file or run checkpoint (default: the bundled model), in eval mode.

    ``expect``: if given, the file must hold exactly this architecture.
    """
    source = Path(path) if path is not None else DEFAULT_WEIGHTS
    if path is None and not source.is_file():
        raise ParameterError(f"the bundled default model {source} is missing; reinstall lowlatseg or pass {{weights}}", "weights")
    obj = load_file(source)
    cfg = net_config_from(obj, source)
    if expect is not None and cfg != expect:
        raise UserError(f"{source} holds architecture {cfg.arch} ({cfg}), not the expected {expect.arch}; pass matching weights")
    model = build(cfg)
    state = {k: v.float() if v.is_floating_point() else v for k, v in obj["model"].items()}
    for k, qs in obj.get("int8", {}).items():
        state[k] = qs["q"].float() * qs["scale"].float().view(-1, 1, 1, 1)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise UserError(f"{source} does not match architecture {cfg.arch}: {first}") from None
    return model.eval()


def fingerprint(model: SplitSegNet) -> str:
    """Short hash of a base network's weights (rounded to float16, as shipped)."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        t = v.detach().to(torch.float16) if v.is_floating_point() else v.detach()
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def bundled_companion(default: Path, base: SplitSegNet, *, fmt: str, fp: str | None = None) -> Path:
    """The bundled companion file (``default``'s folder, same name prefix) trained for ``base``:
    ``default`` itself when it matches or nothing else does, so a bundled ladder member finds its own.
    ``fp``: ``fingerprint(base)`` if the caller has it already."""
    fp = fp or fingerprint(base)
    prefix = default.name.split("_", 1)[0] + "_"
    candidates = [default] + sorted(p for p in default.parent.glob(prefix + "*.pt") if p != default)
    for p in candidates:
        if not p.is_file():
            continue
        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
        except Exception:
            continue
        if isinstance(obj, dict) and obj.get("format") == fmt and obj.get("base_fingerprint") == fp:
            return p
    return default


def load_companion(path: str | Path | None, default: Path, *, fmt: str, kind: str, base: SplitSegNet,
                   hint: str = "") -> dict[str, Any]:
    """A file trained for one base network (propagation, scheduler): read, check its format and
    that it was trained for ``base`` (by fingerprint). ``kind`` names the file and its trainer."""
    fp = fingerprint(base)
    p = Path(path) if path is not None else bundled_companion(default, base, fmt=fmt, fp=fp)
    if not p.is_file():
        what = f"the bundled {kind} weights" if path is None else f"{kind} weights"
        raise UserError(f"{what} {p} do not exist; pass --{kind} with a file from 'lowlatseg train {kind}'{hint}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{kind} weights {p} cannot be read ({type(e).__name__}); the file is corrupt") from None
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise UserError(f"{p} is not a lowlatseg {kind} file; pass one written by 'lowlatseg train {kind}'")
    if obj.get("base_fingerprint") != fp:
        raise ParameterError(
            f"{p} was trained for base weights {obj.get('base_fingerprint')} ({obj.get('base_arch')}), not the base model "
            f"in use ({fp}, {base.config.arch}); pass the matching {{weights}} (the exact file it was trained on: an exported "
            f"or re-exported copy differs) or retrain with 'lowlatseg train {kind}'", "weights"
        )
    return obj
