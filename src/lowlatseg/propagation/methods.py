"""Propagation methods, one small class each, behind one protocol.

Every method transports keyframe-aligned feature maps to the current frame:

* ``warp(key, cur, features)``: B x C x h x w features aligned with the keyframe -> aligned
  with the current frame (same shape);
* ``propagate(key, cur)`` = ``warp(key, cur, key.f_high)``: the estimate of F_h^t.

How the propagated features become labels (with or without low-level fusion) is the job of
:mod:`lowlatseg.propagation.produce`, the same for every method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lowlatseg.propagation.flow import DISFlow, flow_to_grid, to_grey, warp
from lowlatseg.propagation.predictor import KernelPredictor
from lowlatseg.propagation.svconv import load_compiled, sv_conv


@dataclass
class KeyState:
    """What a keyframe leaves behind for the frames that follow it."""

    index: int  # frame number of the keyframe in the stream
    image: torch.Tensor  # 1 x 3 x H x W float RGB [0, 1], network input size
    f_low: torch.Tensor  # 1 x low_ch x h x w
    f_high: torch.Tensor  # 1 x high_ch x h x w
    grey: np.ndarray | None = None  # H x W uint8, filled lazily by methods that need it
    # what a method computes from the keyframe alone, once per keyframe (filled lazily, only
    # outside autograd), keyed by the module that computed it
    cache: dict[nn.Module, torch.Tensor] = field(default_factory=dict)


@dataclass
class Current:
    """The current (non-key) frame as seen by a propagation method."""

    index: int
    image: torch.Tensor  # 1 x 3 x H x W float RGB [0, 1]
    f_low: torch.Tensor  # 1 x low_ch x h x w


@dataclass(frozen=True)
class PropagationConfig:
    """Numbers shared by the kernel-based methods; saved in propagation checkpoints."""

    kernel_size: int = 7  # K: taps per side of the per-location kernel (49 taps: the CPU budget)
    # spacing of the taps in feature cells: reach = K//2 * dilation = 6 cells = 48 image px. Taps one
    # cell apart (1) lose nothing to the flow oracle on the city clip, but an 800-step file trained
    # so lost on the held-out highway and static clips (docs/measurements.md): an option
    dilation: int = 2
    embed_ch: int = 16  # matching embedding of the kernel predictor
    hidden: int = 32  # width of the kernel predictor's CNN
    image_sigma: float = 0.1  # image-difference baseline: colour distance scale (RGB in [0, 1])
    flow_preset: str = "fast"  # DIS preset of the flow baseline (and of flow-guided propagation)
    # DIS runs on frames shrunk this many times per side (propagation/flow.py); 1: full size, as
    # every bundled file was trained and measured (docs/figures/flow_resolution.py)
    flow_downscale: int = 1
    guided_kernel_size: int = 5  # flow-guided: taps per side of the correction kernel after the flow warp
    guided_dilation: int = 1  # flow-guided: tap spacing (reach 2 feature px = 16 image px: flow did the rest)
    # the predictors' initial kernel: this share on the centre tap, the rest spread evenly; None: a
    # centre logit of 3 (0.295 of a 7x7 kernel, 0.456 of a 5x5), as the bundled files. Only
    # training reads it. 0.8 trained sharper kernels in 250 steps (docs/measurements.md)
    centre_weight: float | None = None
    # the predictors see the correlation at every kernel tap, not at 3 x 3 coarse offsets (predictor.py)
    full_correlation: bool = False
    # kernels = softmax(sharpness * logits) at inference (2 = each kernel squared and renormalised):
    # training leaves them flatter than the labels want; `train sharpness` picks these on training
    # clips after training (1: as trained); guided_sharpness is the flow-guided predictor's
    sharpness: float = 1.0
    guided_sharpness: float = 1.0
    residual_hidden: int = 64  # flow-residual: width of its correction network (propagation/flow_residual.py)


@runtime_checkable
class Propagator(Protocol):
    name: str

    def warp(self, key: KeyState, cur: Current, features: torch.Tensor) -> torch.Tensor: ...

    def propagate(self, key: KeyState, cur: Current) -> torch.Tensor: ...


class _Base(nn.Module):
    name = "base"

    def warp(self, key: KeyState, cur: Current, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def propagate(self, key: KeyState, cur: Current) -> torch.Tensor:
        return self.warp(key, cur, key.f_high)


class Clockwork(_Base):
    """Copy the keyframe's features unchanged (Clockwork convnets)."""

    name = "clockwork"

    def warp(self, key: KeyState, cur: Current, features: torch.Tensor) -> torch.Tensor:
        return features


class FlowWarp(_Base):
    """Warp by dense optical flow, as in Deep Feature Flow (flow from OpenCV DIS on grey frames)."""

    name = "flow"

    def __init__(self, preset: str = "fast", downscale: int = 1) -> None:
        super().__init__()
        self.flow = DISFlow(preset, downscale)

    @classmethod
    def runtime(cls) -> FlowWarp:
        """The runtime's ``flow`` method (``--propagation-method flow``, the default): DIS at
        ``defaults.RUNTIME_FLOW_PRESET``, full size."""
        from lowlatseg.defaults import RUNTIME_FLOW_PRESET

        return cls(RUNTIME_FLOW_PRESET)

    @classmethod
    def of(cls, cfg: PropagationConfig) -> FlowWarp:
        """The flow baseline with a propagation file's DIS settings (preset, downscale)."""
        return cls(cfg.flow_preset, cfg.flow_downscale)

    def warp(self, key: KeyState, cur: Current, features: torch.Tensor) -> torch.Tensor:
        flow = grid_flow(self.flow, key, cur, (features.shape[-2], features.shape[-1]))
        return warp(features, flow.to(features.dtype).to(features.device))


def grid_flow(dis: DISFlow, key: KeyState, cur: Current, hw: tuple[int, int]) -> torch.Tensor:
    """B x 2 x h x w backward flow current -> key on the feature grid ``hw`` (grid pixels), from DIS
    on the grey frames; a single keyframe's grey image is computed once and kept in ``key``."""
    if key.image.shape[0] == 1:
        if key.grey is None:
            key.grey = to_grey(key.image)
        greys = [key.grey]
    else:
        greys = [to_grey(key.image[b : b + 1]) for b in range(key.image.shape[0])]
    return torch.cat([flow_to_grid(dis(to_grey(cur.image[b : b + 1]), g), hw) for b, g in enumerate(greys)])


def flow_warp_with_low(dis: DISFlow, key: KeyState, cur: Current, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``features`` (B x C x h x w) and the keyframe's ``f_low`` backward-warped by DIS flow
    current -> key on the feature grid, in one sampling pass: (warped features, warped key f_low).
    What the flow-guided and flow-residual methods correct afterwards."""
    flow = grid_flow(dis, key, cur, (cur.f_low.shape[-2], cur.f_low.shape[-1]))
    flow = flow.to(dtype=cur.f_low.dtype, device=cur.f_low.device)
    c = features.shape[1]
    both = warp(torch.cat([features, key.f_low], dim=1), flow)
    return both[:, :c], both[:, c:]


class _KernelMethod(_Base):
    def __init__(self, cfg: PropagationConfig) -> None:
        super().__init__()
        self.kernel_size, self.dilation = cfg.kernel_size, cfg.dilation
        load_compiled()  # the first propagated frame must not pay for loading sv_conv's compiled loop

    def weights(self, key: KeyState, cur: Current) -> torch.Tensor:
        raise NotImplementedError

    def warp(self, key: KeyState, cur: Current, features: torch.Tensor) -> torch.Tensor:
        return sv_conv(features, self.weights(key, cur), kernel_size=self.kernel_size, dilation=self.dilation)


class Uniform(_KernelMethod):
    """One learned K x K kernel for every location (the paper's 'unified kernel')."""

    name = "uniform"

    def __init__(self, cfg: PropagationConfig) -> None:
        super().__init__(cfg)
        logits = torch.zeros(1, cfg.kernel_size**2, 1, 1)
        logits[0, cfg.kernel_size**2 // 2] = 4.0  # start close to the identity
        self.logits = nn.Parameter(logits)

    def weights(self, key: KeyState, cur: Current) -> torch.Tensor:
        return torch.softmax(self.logits, dim=1)  # 1 x K*K x 1 x 1, broadcast over locations


class ImageDifference(_KernelMethod):
    """Weights from image similarity, not learned: softmax over offsets of -SSD / sigma^2,
    where SSD is the 3x3-box-filtered squared RGB difference between the current frame at p
    and the keyframe at p + offset, both area-downsampled to the feature grid."""

    name = "image-difference"

    def __init__(self, cfg: PropagationConfig) -> None:
        super().__init__(cfg)
        self.sigma = cfg.image_sigma

    def weights(self, key: KeyState, cur: Current) -> torch.Tensor:
        h, w = cur.f_low.shape[-2:]
        a = F.adaptive_avg_pool2d(cur.image, (h, w))
        b = F.adaptive_avg_pool2d(key.image, (h, w))
        r = self.kernel_size // 2 * self.dilation
        pb = F.pad(b, (r, r, r, r), mode="replicate")
        ssd = []
        for i in range(self.kernel_size):
            for j in range(self.kernel_size):
                y, x = i * self.dilation, j * self.dilation
                ssd.append(((pb[:, :, y : y + h, x : x + w] - a) ** 2).mean(1, keepdim=True))
        d = F.avg_pool2d(torch.cat(ssd, 1), 3, stride=1, padding=1, count_include_pad=False)
        return torch.softmax(-d / self.sigma**2, dim=1)


class Adaptive(_KernelMethod):
    """The paper's method: per-location kernels predicted from both frames' low-level features."""

    name = "adaptive"

    def __init__(self, cfg: PropagationConfig, *, low_ch: int) -> None:
        super().__init__(cfg)
        self.predictor = KernelPredictor(
            low_ch=low_ch, kernel_size=cfg.kernel_size, dilation=cfg.dilation, embed_ch=cfg.embed_ch, hidden=cfg.hidden,
            centre_weight=cfg.centre_weight, full_correlation=cfg.full_correlation, sharpness=cfg.sharpness,
        )

    def weights(self, key: KeyState, cur: Current) -> torch.Tensor:
        if torch.is_grad_enabled():  # training: no cache, gradients flow through both embeddings
            return self.predictor(key.f_low, cur.f_low)
        ek = key.cache.get(self.predictor)
        if ek is None:  # the keyframe's embedding is the same for every frame propagated from it
            ek = key.cache[self.predictor] = self.predictor.unit_embedding(key.f_low)
        return self.predictor(key.f_low, cur.f_low, key_embedding=ek)


def all_methods(cfg: PropagationConfig, *, low_ch: int) -> dict[str, _Base]:
    """Fresh instances of every method, by name."""
    return {
        "clockwork": Clockwork(),
        "flow": FlowWarp.of(cfg),
        "uniform": Uniform(cfg),
        "image-difference": ImageDifference(cfg),
        "adaptive": Adaptive(cfg, low_ch=low_ch),
    }


