"""What the evaluation commands load: models with their propagation, labelled clips, checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lowlatseg.checkpoint import load_model
from lowlatseg.errors import UserError
from lowlatseg.nn.splitnet import SplitSegNet
from lowlatseg.propagation.methods import Adaptive, PropagationConfig, Propagator, Uniform

if TYPE_CHECKING:
    from lowlatseg.propagation.weights import LearnedMethods


def check_classes(model: SplitSegNet, ds: Any) -> None:
    """The weights and the data must use the same label set."""
    if model.config.num_classes != ds.labels.num_classes:
        raise UserError(
            f"the weights predict {model.config.num_classes} classes but the {ds.labels.name} data has "
            f"{ds.labels.num_classes}; pass weights trained on this label set"
        )


@dataclass(frozen=True)
class Propagation:
    """A base model with the learned methods of its propagation file (``flow_guided``,
    ``flow_residual``: None when the file has none)."""

    model: SplitSegNet
    learned: LearnedMethods

    @property
    def config(self) -> PropagationConfig:
        return self.learned.config

    @property
    def adaptive(self) -> Adaptive:
        return self.learned.adaptive

    @property
    def uniform(self) -> Uniform:
        return self.learned.uniform

    @property
    def flow_guided(self) -> Propagator | None:
        return self.learned.flow_guided

    @property
    def flow_residual(self) -> Propagator | None:
        return self.learned.flow_residual


def load_propagation_of(weights: str | None, propagation: str | None) -> Propagation:
    """The base model (``weights``; None: bundled) and its propagation (None: bundled), one read of each file."""
    from lowlatseg.propagation.weights import load_methods

    model = load_model(weights)
    return Propagation(model, load_methods(propagation, model))


@dataclass(frozen=True)
class Clip:
    """A labelled clip in time order and the first ``n`` frames to use, with the base model's propagation."""

    ds: Any  # SegmentationDataset: ds[i] = (H x W x 3 uint8 RGB, H x W labels, 255 = void)
    n: int
    prop: Propagation


def open_clip(data: str, split: str, weights: str | None, propagation: str | None, max_frames: int) -> Clip:
    """A labelled clip in time order, the base model with its propagation (classes checked), and
    how many frames to use (``max_frames``; 0: all)."""
    from lowlatseg.data.camvid import camvid
    from lowlatseg.evaluation.video import check_time_order

    ds = camvid(data, split)
    check_time_order(ds.samples)
    prop = load_propagation_of(weights, propagation)
    check_classes(prop.model, ds)
    n = len(ds) if not max_frames else min(max_frames, len(ds))
    return Clip(ds, n, prop)
