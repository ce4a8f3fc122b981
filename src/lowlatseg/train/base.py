"""Training of the split segmentation network (``lowlatseg train base``).

A flat loop: one process by default, DistributedDataParallel under ``torchrun``.
The run folder holds ``config.json``, ``last.pt`` (resume), ``best.pt``, ``log.jsonl``
(one line per epoch: loss, val mIoU, lr, seconds), ``curves.png`` and, at the end,
``weights.pt`` (compact float16 weights for inference).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from lowlatseg.checkpoint import RUN_FORMAT, atomic_save, export_weights, load_file, load_model
from lowlatseg.classes import IGNORE_INDEX, LabelSet
from lowlatseg.data.camvid import SegmentationDataset, read_split
from lowlatseg.data.datasets import open_dataset
from lowlatseg.data.transforms import augment, label_tensor, to_tensor
from lowlatseg.errors import ParameterError, UserError
from lowlatseg.scoring import evaluate_images
from lowlatseg.nn.builders import build, variant_config
from lowlatseg.nn.splitnet import SplitSegNet
from lowlatseg.nn.grow import copy_body, freeze_body, grow_from
from lowlatseg.plots import training_curves
from lowlatseg.train import distributed
from lowlatseg.train.config import BaseTrainConfig
from lowlatseg.train.losses import segmentation_loss


class AugmentedPairs(Dataset):
    """Augmented crops; the randomness of item i in epoch e depends on (seed, e, i) only.

    With an ``extra`` split (pseudo-labelled frames), items ``len(base)..`` are ``per_epoch`` of
    its frames (all when 0), drawn without replacement anew each epoch from (seed, epoch).
    """

    def __init__(self, base: SegmentationDataset, cfg: BaseTrainConfig, extra: SegmentationDataset | None = None,
                 per_epoch: int = 0) -> None:
        self.base, self.cfg, self.epoch, self.extra = base, cfg, 0, extra
        self.per_epoch = 0 if extra is None else min(per_epoch or len(extra), len(extra))
        self._drawn: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.base) + self.per_epoch

    def extra_indices(self) -> np.ndarray:
        """The extra split's frames of this epoch."""
        if self._drawn is None or self._drawn[0] != self.epoch:
            assert self.extra is not None
            seq = np.random.SeedSequence([self.cfg.seed, self.epoch], spawn_key=(1,))  # not any item's augmentation seed
            order = np.random.default_rng(seq).permutation(len(self.extra))
            self._drawn = (self.epoch, order[: self.per_epoch])
        return self._drawn[1]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.cfg.seed, self.epoch, i])
        if i < len(self.base):
            pair = self.base[i]
        else:
            assert self.extra is not None
            pair = self.extra[int(self.extra_indices()[i - len(self.base)])]
        image, label = augment(*pair, self.cfg.augment, rng)
        return to_tensor(image), label_tensor(label)


def open_extra(cfg: BaseTrainConfig, labels: LabelSet) -> SegmentationDataset | None:
    """The ``extra_data`` split (read from disk each time, not cached), checked against the
    training labels (its void is ``num_classes``) by its ``pseudo.json`` when it has one."""
    if cfg.extra_data is None:
        if cfg.extra_per_epoch:
            raise ParameterError("{extra_per_epoch} sets how many frames of {extra_data} each epoch mixes in; "
                                 "add {extra_data} or drop it", "extra_per_epoch", "extra_data")
        return None
    root = Path(cfg.extra_data)
    if not root.is_dir():
        raise ParameterError(f"{{extra_data}} {root} is not a folder; pass the folder 'train pseudo-labels' wrote", "extra_data")
    for manifest in (root / f"{cfg.extra_split}.json", root / "pseudo.json"):
        if manifest.is_file():
            try:
                n = json.loads(manifest.read_text()).get("num_classes")
            except (ValueError, AttributeError):
                raise ParameterError(f"{manifest} is not a pseudo-label summary (bad JSON); restore it or label again",
                                     "extra_data") from None
            if n is not None and n != labels.num_classes:
                raise ParameterError(f"{{extra_data}} {root} is labelled with {n} classes but the training split has "
                                     f"{labels.num_classes}; label it with a teacher of the same classes", "extra_data")
            break
    return SegmentationDataset(read_split(root, cfg.extra_split), labels=labels, void_value=labels.num_classes, cache=False)


def extra_identity(ds: SegmentationDataset | None) -> str | None:
    """A hash of the extra split's frame list: a resumed run must draw from the same frames."""
    if ds is None:
        return None
    return hashlib.sha256("\n".join(str(s.image) for s in ds.samples).encode()).hexdigest()[:16]


def class_weights(ds: SegmentationDataset, how: str) -> torch.Tensor | None:
    """Per-class loss weights from label frequencies over the training split."""
    if how == "none":
        return None
    if how != "sqrt-median":
        raise UserError(f"unknown class weighting {how!r}; choose sqrt-median or none")
    freq = ds.class_frequencies()
    present = freq > 0
    med = np.median(freq[present]) if present.any() else 1.0
    w = np.where(present, np.sqrt(med / np.maximum(freq, 1e-12)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def lr_factor(step: int, *, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then poly(0.9) decay to 0 at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    return max(0.0, 1 - (step - warmup) / max(1, total - warmup)) ** 0.9


def train_base(cfg: BaseTrainConfig, out: Path, *, resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) a run in ``out``; returns the final log line."""
    dist_info = distributed.setup()
    try:
        return _train(cfg, out, dist_info, resume=resume, progress=progress)
    finally:
        distributed.teardown(dist_info)


def _train(cfg: BaseTrainConfig, out: Path, di: distributed.DistInfo, *, resume: bool, progress: bool) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    if cfg.body_from and (cfg.init or cfg.pretrained):  # before anything is written
        raise ParameterError("{body_from} copies low and high from a trained network; it does not go with {init} or "
                             "{pretrained}", "body_from", "init", "pretrained")
    if cfg.batch_size < 2:
        raise ParameterError("{batch_size} must be at least 2 per process: BatchNorm needs 2 samples per step", "batch_size")
    if out.exists() and not out.is_dir():
        raise ParameterError(f"{{out}} {out} is an existing file; give a folder for the run (it is created if needed)", "out")
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last.pt"

    # 1. resume: the run folder's config is authoritative; only `epochs` may change.
    state: dict[str, Any] | None = None
    if resume and last.is_file():
        state = load_file(last)
        if state.get("format") != RUN_FORMAT:
            raise ParameterError(f"{last} is a weights file, not a run checkpoint; use a fresh {{out}} folder", "out")
        saved = BaseTrainConfig.from_dict(state["train_config"])
        diff = [k for k in saved.differences(cfg) if k != "epochs"]
        if diff:
            raise UserError(
                f"{out} holds a run with different settings ({', '.join(diff)}); resume with the same flags or use a new --out"
            )
        cfg = saved.with_updates(epochs=cfg.epochs)
    if di.is_main:
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))

    # 2. data: cached uint8 images, augmented crops, a sharded sampler under DDP.
    train_ds = open_dataset(cfg.dataset, cfg.data, cfg.split, without_drive=cfg.holdout_drive)
    val_ds = open_dataset(cfg.dataset, cfg.data, cfg.val_split) if cfg.val_split else None
    dev_ds = open_dataset(cfg.dataset, cfg.data, cfg.split, drive=cfg.holdout_drive) if cfg.holdout_drive else None
    extra_ds = open_extra(cfg, train_ds.labels)
    extra_id = extra_identity(extra_ds)
    if state is not None and state.get("extra_identity") != extra_id:
        raise UserError(f"the frames of --extra-data {cfg.extra_data} are not those this run started with; "
                        "resume with the same folder or use a new --out")
    pairs = AugmentedPairs(train_ds, cfg, extra_ds, cfg.extra_per_epoch)
    sampler: DistributedSampler | None = (
        DistributedSampler(pairs, num_replicas=di.world_size, rank=di.rank, seed=cfg.seed) if di.enabled else None
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(
        pairs, batch_size=cfg.batch_size, shuffle=sampler is None, sampler=sampler, generator=gen,
        num_workers=cfg.workers, drop_last=len(pairs) >= cfg.batch_size * di.world_size, persistent_workers=False,
    )
    weights = class_weights(train_ds, cfg.class_weighting)

    # 3. model, optimiser, schedule (per step).
    net_cfg = variant_config(cfg.arch, num_classes=train_ds.labels.num_classes)
    model = build(net_cfg)
    if cfg.distill_epochs and not cfg.pretrained:
        raise ParameterError("{distill_epochs} teaches low the pretrained front end; it needs {pretrained}", "distill_epochs", "pretrained")
    if state is None and cfg.pretrained:
        _init_pretrained(model, cfg, pairs, out, progress=progress and di.is_main)
    if state is None and cfg.init:
        grown = grow_from(model, load_model(cfg.init))
        if di.is_main:
            tqdm.write(f"grown from {cfg.init}: {len(grown)} new residual blocks start as the identity")
    frozen: list[torch.nn.Module] = []
    if cfg.body_from:
        if state is None:
            copy_body(model, load_model(cfg.body_from))
        frozen = freeze_body(model)
    model = model.to(di.device)
    steps_per_epoch = len(loader) if cfg.max_steps_per_epoch <= 0 else min(len(loader), cfg.max_steps_per_epoch)
    total = steps_per_epoch * cfg.epochs
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total=total, warmup=steps_per_epoch * cfg.warmup_epochs)
    )
    history: list[dict[str, Any]] = []
    start_epoch, best = 0, -math.inf
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        history, start_epoch, best = state["history"], state["epoch"], state["best_miou"]
    ddp = torch.nn.parallel.DistributedDataParallel(model) if di.enabled else model
    if weights is not None:
        weights = weights.to(di.device)

    # 4. epochs: train, validate, log, checkpoint, plot.
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        pairs.epoch = epoch
        gen.manual_seed(cfg.seed * 100_003 + epoch)  # shuffle order is a function of (seed, epoch): resume-exact
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        for part in frozen:
            part.eval()  # frozen parts keep their BatchNorm statistics
        losses: list[float] = []
        bar = tqdm(loader, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not (progress and di.is_main), leave=False)
        for step, (x, y) in enumerate(bar):
            if step >= steps_per_epoch:
                break
            x, y = x.to(di.device, non_blocking=True), y.to(di.device, non_blocking=True)
            logits = ddp(x)  # B x C x H x W
            loss = segmentation_loss(logits, y, kind=cfg.loss, weight=weights, ignore_index=IGNORE_INDEX)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        bar.close()
        mean_loss = _mean_across(losses, di)
        entry: dict[str, Any] = {
            "epoch": epoch + 1,
            "loss": round(mean_loss, 4),
            "lr": opt.param_groups[0]["lr"],
            "train_seconds": round(time.perf_counter() - t0, 1),
            "val_miou": None,
        }
        if di.is_main:
            if val_ds is not None:
                model.eval()
                entry["val_miou"] = round(evaluate_images(model, val_ds).confusion.miou(), 2)
            if dev_ds is not None:
                model.eval()
                entry["dev_miou"] = round(evaluate_images(model, dev_ds).confusion.miou(), 2)
            history.append(entry)
            with (out / "log.jsonl").open("a") as f:
                f.write(json.dumps(entry) + "\n")
            ckpt = {
                "format": RUN_FORMAT, "net_config": _asdict(net_cfg), "train_config": cfg.to_dict(),
                "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "epoch": epoch + 1, "history": history, "best_miou": best, "extra_identity": extra_id,
            }
            score = entry["val_miou"] if entry["val_miou"] is not None else -mean_loss
            if score > best:
                best = score
                ckpt["best_miou"] = best
                export_weights(model, out / "best.pt", meta={"epoch": epoch + 1, "val_miou": entry["val_miou"]})
            atomic_save(ckpt, last)
            training_curves(history, out / "curves.png")
            msg = f"epoch {epoch + 1}/{cfg.epochs} loss {mean_loss:.4f}"
            if entry["val_miou"] is not None:
                msg += f" val mIoU {entry['val_miou']:.2f}"
            if entry.get("dev_miou") is not None:
                msg += f" dev ({cfg.holdout_drive}) mIoU {entry['dev_miou']:.2f}"
            tqdm.write(msg + f" ({entry['train_seconds']:.0f}s)")
        distributed.barrier(di)

    if di.is_main:
        export_weights(model, out / "weights.pt", meta={"epochs": cfg.epochs, "final_val_miou": history[-1]["val_miou"] if history else None})
    return history[-1] if history else {}


def _init_pretrained(model: SplitSegNet, cfg: BaseTrainConfig, pairs: Dataset, out: Path, *, progress: bool) -> None:
    """ImageNet weights into high's pretrained blocks, then (``distill_epochs``) low learns the front end."""
    from lowlatseg.nn.efficientnet_lite import front_end, load_imagenet
    from lowlatseg.nn.lite_high import LiteHigh
    from lowlatseg.train.distill import distill_low

    if not isinstance(model.high, LiteHigh):
        raise ParameterError(f"{{pretrained}} needs an architecture with a pretrained backbone (llnet-e, llnet-e-os16, llnet-e-sp, llnet-e2, llnet-d16), not {cfg.arch}", "pretrained")
    if cfg.distill_epochs > 0 and model.high.frame:
        raise ParameterError(f"{cfg.arch} runs the whole pretrained backbone on the frame: there is no front end to distil; "
                             "drop {distill_epochs}", "distill_epochs")
    net = load_imagenet(variant=model.high.variant)
    n = model.high.load_pretrained(net)
    if progress:
        tqdm.write(f"high: {n} tensors of EfficientNet-{model.high.variant.capitalize()} from the ImageNet weights")
    if cfg.distill_epochs > 0:
        loader = DataLoader(pairs, batch_size=cfg.batch_size, shuffle=True, num_workers=cfg.workers,
                            generator=torch.Generator().manual_seed(cfg.seed + 1), drop_last=True)
        distill_low(model, front_end(net), loader, epochs=cfg.distill_epochs, lr=cfg.lr * 2,
                    weight_decay=cfg.weight_decay, out=out, progress=progress)


def _mean_across(values: list[float], di: distributed.DistInfo) -> float:
    t = torch.tensor([sum(values), len(values)], dtype=torch.float64, device=di.device)
    if di.enabled:
        torch.distributed.all_reduce(t)
    total, count = float(t[0].item()), float(t[1].item())
    return total / count if count else math.nan


def _asdict(cfg: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(cfg)
