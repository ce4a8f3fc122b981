"""Stage 1 of ``train base --pretrained --distill-epochs N``: a cheap ``low`` learns the pretrained front end.

The pretrained EfficientNet-Lite0's stem and blocks 0-4 cost most of its time at full
resolution, so they cannot run on every frame. Instead, ``low`` (from scratch) followed by
``high.adapt`` (the 1x1 adapter in front of the pretrained blocks 5-15) is trained to
reproduce the front end's stride-8 features (B x 40 x H/8 x W/8) on the training crops:

    loss = mean over B, C, H/8, W/8 of ((adapt(low(x)) - front_end(x)) / sigma_c)^2

with ``sigma_c`` the teacher's standard deviation of channel c, measured once on the first
batches (its channels differ in scale by more than 10x; unweighted, a few would dominate).

The teacher is frozen; nothing else of the network changes here. Afterwards the whole network
is fine-tuned with labels (train/base.py), starting from features the pretrained blocks know.
The run folder gets ``distilled.pt`` (the student's tensors) and one log line per epoch with the
loss and the share of the teacher's variance left unexplained (``residual``, 0 = a perfect copy).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from lowlatseg.checkpoint import atomic_save
from lowlatseg.nn.efficientnet_lite import FrontEnd
from lowlatseg.nn.lite_high import LiteHigh
from lowlatseg.nn.splitnet import SplitSegNet


def student_modules(model: SplitSegNet) -> torch.nn.ModuleDict:
    """What stage 1 trains: ``low`` and ``high.adapt``."""
    if not isinstance(model.high, LiteHigh):
        raise TypeError(f"distillation needs a network with a pretrained high (backbone lite0), not {model.config.backbone}")
    return torch.nn.ModuleDict({"low": model.low, "adapt": model.high.adapt})


@torch.no_grad()
def _channel_std(teacher: FrontEnd, loader: DataLoader, batches: int = 4) -> torch.Tensor:
    feats = []
    for i, (x, _) in enumerate(loader):
        if i >= batches:
            break
        feats.append(teacher(x).transpose(0, 1).reshape(40, -1))
    return torch.cat(feats, dim=1).std(dim=1).clamp_min(1e-3).view(1, -1, 1, 1)


def distill_low(model: SplitSegNet, teacher: FrontEnd, loader: DataLoader, *, epochs: int, lr: float,
                weight_decay: float, out: Path, progress: bool = True) -> list[dict[str, Any]]:
    """Train ``low`` + ``high.adapt`` to reproduce ``teacher`` (in place); returns the log lines.

    Resumes from nothing: when ``out/distilled.pt`` exists, its tensors are loaded instead and
    no step is taken (stage 1 is short; a run interrupted inside it starts stage 1 again).
    """
    student = student_modules(model)
    done = out / "distilled.pt"
    if done.is_file():
        saved = torch.load(done, map_location="cpu", weights_only=True)
        student.load_state_dict(saved["student"], strict=True)
        return list(saved["history"])
    teacher.eval()
    student.train()
    sigma = _channel_std(teacher, loader)  # 1 x 40 x 1 x 1
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=weight_decay)
    total = max(1, epochs * len(loader))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / total) ** 0.9)
    history: list[dict[str, Any]] = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        losses: list[float] = []
        residuals: list[float] = []
        bar = tqdm(loader, desc=f"distil {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for x, _ in bar:
            with torch.no_grad():
                target = teacher(x)  # B x 40 x H/8 x W/8
            pred = student["adapt"](student["low"](x))  # B x 40 x H/8 x W/8
            loss = F.mse_loss(pred / sigma, target / sigma)  # = the residual share per channel, averaged
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(F.mse_loss(pred.detach(), target).item())
            residuals.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", residual=f"{np.mean(residuals[-20:]):.3f}")
        bar.close()
        entry = {"stage": "distill", "epoch": epoch + 1, "loss": round(float(np.mean(losses)), 5),
                 "residual": round(float(np.mean(residuals)), 4), "train_seconds": round(time.perf_counter() - t0, 1)}
        history.append(entry)
        with (out / "log.jsonl").open("a") as f:
            f.write(json.dumps(entry) + "\n")
        tqdm.write(f"distil {epoch + 1}/{epochs} loss {entry['loss']:.5f} residual {entry['residual']:.4f} "
                   f"({entry['train_seconds']:.0f}s)")
    atomic_save({"student": student.state_dict(), "history": history}, done)
    return history
