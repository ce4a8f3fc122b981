"""Frozen training configs: defaults here, overridden by CLI flags, saved in every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from lowlatseg.data.transforms import AugmentConfig


@dataclass(frozen=True)
class BaseTrainConfig:
    """Training of the whole split network on labelled stills."""

    arch: str = "llnet-s"  # builder name (lowlatseg.nn.builders.VARIANTS)
    init: str | None = None  # weights/run of a smaller trained variant to grow from (new blocks start as identity)
    data: str = "../shared/data/camvid"  # dataset folder
    dataset: str = "camvid"  # 'camvid' (SPLIT.txt lists) or 'cityscapes' (official layout)
    split: str = "train"  # training split
    val_split: str | None = "val"  # evaluated after every epoch (never trained on); None: skip
    holdout_drive: str | None = None  # drive removed from the training split and scored every epoch (dev-test)
    body_from: str | None = None  # weights of a network with the same low and high: copied and frozen, only the head trains
    pretrained: bool = False  # lite0 backbones: start high's blocks from ImageNet weights (the [train] extra)
    extra_data: str | None = None  # a CamVid-format folder of extra training frames (train pseudo-labels writes one)
    extra_split: str = "pseudo"  # its split list: extra_data/extra_split.txt
    extra_per_epoch: int = 0  # frames of the extra split mixed into each epoch, drawn anew (0: all of them)
    distill_epochs: int = 0  # with pretrained: epochs of low learning the pretrained front end first (train/distill.py)
    epochs: int = 120  # full passes over the training split
    batch_size: int = 8  # per process
    lr: float = 2e-3  # AdamW peak learning rate (after warm-up)
    weight_decay: float = 1e-4  # AdamW decoupled weight decay
    warmup_epochs: int = 3  # linear warm-up, then polynomial (power 0.9) decay to 0
    class_weighting: str = "sqrt-median"  # 'sqrt-median' (sqrt of median-frequency balancing) or 'none'
    loss: str = "ce"  # 'ce' (weighted cross-entropy) or 'ce+lovasz' (plus the Lovász-softmax mIoU surrogate; train/losses.py)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0  # data order and augmentation are a function of (seed, epoch, index)
    workers: int = 0  # DataLoader worker processes (0: load in the training process)
    max_steps_per_epoch: int = 0  # >0: cap steps per epoch (smoke tests)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BaseTrainConfig:
        d = dict(d)
        aug_kw: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.pop("augment", {}).items()}
        known = {f.name for f in fields(cls)}
        return cls(augment=AugmentConfig(**aug_kw), **{k: v for k, v in d.items() if k in known})

    def differences(self, other: BaseTrainConfig) -> list[str]:
        a, b = self.to_dict(), other.to_dict()
        return [k for k in a if a[k] != b[k]]

    def with_updates(self, **kw: Any) -> BaseTrainConfig:
        return replace(self, **kw)
