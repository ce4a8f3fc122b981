"""Training runs end to end on tiny data, logs, plots, resumes, and runs under torchrun (2 CPU processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lowlatseg.checkpoint import load_file, load_model
from lowlatseg.data.transforms import AugmentConfig
from lowlatseg.errors import UserError
from lowlatseg.train.base import lr_factor, train_base
from lowlatseg.train.config import BaseTrainConfig


def _cfg(data: Path, **kw: object) -> BaseTrainConfig:
    base = dict(arch="llnet-tiny", data=str(data), epochs=2, batch_size=2, warmup_epochs=1,
                augment=AugmentConfig(crop=(32, 48), scale=(0.8, 1.2)))
    base.update(kw)
    return BaseTrainConfig(**base)  # type: ignore[arg-type]


def test_train_writes_run_folder_and_resumes(tiny_camvid: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train_base(_cfg(tiny_camvid), out, progress=False)
    for name in ("config.json", "last.pt", "best.pt", "weights.pt", "log.jsonl", "curves.png"):
        assert (out / name).is_file(), name
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2]
    assert all(e["val_miou"] is not None for e in log)
    state = load_file(out / "last.pt")
    assert state["epoch"] == 2 and state["train_config"]["arch"] == "llnet-tiny"
    # resume with more epochs continues from epoch 3, it does not start over
    train_base(_cfg(tiny_camvid, epochs=3), out, progress=False)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2, 3]
    assert load_model(out / "weights.pt").config.arch == "llnet-tiny"


def test_resume_with_other_settings_is_refused(tiny_camvid: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train_base(_cfg(tiny_camvid, epochs=1), out, progress=False)
    with pytest.raises(UserError, match="different settings \\(lr\\)"):
        train_base(_cfg(tiny_camvid, epochs=1, lr=0.5), out, progress=False)


def test_lovasz_loss_trains_and_is_saved(tiny_camvid: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train_base(_cfg(tiny_camvid, epochs=1, loss="ce+lovasz"), out, progress=False)
    assert load_file(out / "last.pt")["train_config"]["loss"] == "ce+lovasz"
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[0]["loss"] > 0
    with pytest.raises(UserError, match="different settings \\(loss\\)"):
        train_base(_cfg(tiny_camvid, epochs=1), out, progress=False)


def test_without_val_split_best_is_lowest_loss(tiny_camvid: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train_base(_cfg(tiny_camvid, epochs=1, val_split=None), out, progress=False)
    assert (out / "best.pt").is_file()


def test_batch_of_one_is_refused(tiny_camvid: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="at least 2"):
        train_base(_cfg(tiny_camvid, batch_size=1), tmp_path / "r", progress=False)


def test_lr_schedule_warms_up_then_decays_to_zero() -> None:
    f = [lr_factor(s, total=100, warmup=10) for s in range(101)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert f[100] == 0.0


def test_torchrun_two_cpu_processes(tiny_camvid: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "lowlatseg.cli", "train", "base", "--arch", "llnet-tiny", "--data", str(tiny_camvid),
        "--out", str(out), "--epochs", "2", "--batch-size", "2", "--crop", "32", "48",
        "--threads", "1", "--quiet",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2]  # rank 0 alone writes the log
    # 4 training images, 2 processes, batch 2: each rank takes 1 step per epoch
    assert load_file(out / "last.pt")["scheduler"]["last_epoch"] == 2
    assert torch.isfinite(torch.tensor(log[-1]["loss"]))
