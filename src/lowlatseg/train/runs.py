"""Starting a run folder: seeds and the config file, the same for every trainer that learns
from pairs with the base network frozen."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch


def start_run(cfg: Any, out: Path) -> np.random.Generator:
    """Seeds torch with ``cfg.seed``, creates ``out`` and writes ``out/config.json``; returns the
    numpy generator every random choice of the run is drawn from."""
    torch.manual_seed(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    return np.random.default_rng(cfg.seed)
