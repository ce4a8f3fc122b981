"""Starting a run folder, the same for every trainer that learns from pairs with the base
network frozen: seeds first, the folder and its config file once the inputs have loaded."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lowlatseg.errors import ParameterError


def start_run(cfg: Any, out: Path) -> np.random.Generator:
    """Checks that ``out`` can be a run folder and seeds torch with ``cfg.seed``; returns the
    numpy generator every random choice of the run is drawn from. Nothing is written yet: call
    :func:`write_config` once the inputs have loaded, so a run that fails on bad input leaves
    no folder behind."""
    if out.exists() and not out.is_dir():
        raise ParameterError(f"{{out}} {out} is an existing file; give a folder for the run (it is created if needed)", "out")
    torch.manual_seed(cfg.seed)
    return np.random.default_rng(cfg.seed)


def write_config(cfg: Any, out: Path) -> None:
    """Creates ``out`` and writes ``out/config.json``."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ParameterError(f"cannot create the run folder {out} ({e.strerror}); choose another {{out}}", "out") from None
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
