"""The deviation predictors of adaptive keyframe scheduling.

From the low-level features of the last keyframe and the current frame (B x low_ch x h x w
each) to the predicted deviation of the propagated result: the fraction of pixels whose
propagated label differs from the per-frame network's label, in [0, 1] (B,). Two kinds, chosen
by :attr:`DeviationConfig.kind` (scheduler files store it; :func:`build_predictor`):

* ``learned`` (:class:`DeviationPredictor`, the paper's): a small network trained on the true
  deviation. Cheap by design: it only uses F_l, which every frame computes anyway, at half the
  feature grid's resolution, and ends in global pooling (one number per frame).
* ``warp-error`` (:class:`WarpErrorPredictor`, no weights): the share of pixels that DIS optical
  flow from the keyframe does not explain, read from the frame that the ``*-frame`` networks
  carry inside F_l. Propagation fails where the flow fails (new content, occlusions, light
  changes), and this measures exactly that; docs/measurements.md (2026-12-07) compares the two.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lowlatseg.errors import UserError
from lowlatseg.nn.blocks import ConvBNReLU
from lowlatseg.nn.lite_high import FRAME_CHANNELS
from lowlatseg.propagation.flow import DISFlow, to_grey

KINDS = ("learned", "warp-error")


@dataclass(frozen=True)
class DeviationConfig:
    low_ch: int = 64  # channels of F_l of the base network
    width: int = 32  # hidden width
    in_ch: int = 0  # leading channels of F_l it reads (0: all). llnet-e's F_l ends with 192 channels of raw frame:
    # reading only its 64 learned ones takes 0.15x the time of reading all 256 (medians of 180 interleaved calls
    # at 360x480 on one thread, 2026-12-01): the predictor runs on every frame of the adaptive modes
    kind: str = "learned"  # "learned" (DeviationPredictor) or "warp-error" (WarpErrorPredictor); files before 2026-12-07: learned
    error_level: int = 16  # warp-error: a pixel is unexplained when the warped keyframe's grey differs by more (0-255)
    downscale: int = 2  # warp-error: DIS and the comparison run on the frame shrunk this many times per side


class DeviationPredictor(nn.Module):
    """(f_low_key, f_low_cur) -> B predicted deviations in [0, 1]."""

    def __init__(self, cfg: DeviationConfig) -> None:
        super().__init__()
        self.config = cfg
        w = cfg.width
        self.in_ch = cfg.in_ch or cfg.low_ch
        self.reduce = ConvBNReLU(3 * self.in_ch, w, kernel=1)
        self.body = nn.Sequential(
            ConvBNReLU(w, w, stride=2),
            ConvBNReLU(w, w, dilation=2),
            ConvBNReLU(w, w, stride=2),
        )
        self.out = nn.Linear(2 * w, 1)

    def forward(self, f_low_key: torch.Tensor, f_low_cur: torch.Tensor) -> torch.Tensor:
        if self.in_ch < f_low_key.shape[1]:
            f_low_key, f_low_cur = f_low_key[:, : self.in_ch], f_low_cur[:, : self.in_ch]
        x = F.avg_pool2d(torch.cat([f_low_key, f_low_cur, (f_low_cur - f_low_key).abs()], 1), 2, ceil_mode=True)
        x = self.body(self.reduce(x))  # B x w x h/8 x w/8
        pooled = torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1)  # B x 2w
        return torch.sigmoid(self.out(pooled)).squeeze(1)


class WarpErrorPredictor(nn.Module):
    """(f_low_key, f_low_cur) -> B deviations in [0, 1] without weights: the share of pixels of the
    current frame that the keyframe, warped by DIS optical flow (``ultrafast``) onto it, does not
    explain (grey levels differing by more than ``error_level``). Both frames are read from the last :data:`FRAME_CHANNELS` channels of F_l (the
    frame pixel-unshuffled by 8, as the ``*-frame`` networks carry it), shrunk ``downscale`` times
    per side. About 4 ms a frame at 360x480 on 2 threads, against 1.5 for the learned predictor
    (docs/figures/scheduler_cost.py). It holds an OpenCV object: one instance per stream (the
    runtime's policy takes its own copy), not shared between threads."""

    def __init__(self, cfg: DeviationConfig) -> None:
        super().__init__()
        if cfg.low_ch <= FRAME_CHANNELS:
            raise UserError(f"the warp-error scheduler reads the frame inside f_low, which networks with {cfg.low_ch} "
                            "low-level channels do not carry; use a learned scheduler ('train scheduler' without "
                            "--predictor warp-error) for this network")
        if not 0 <= cfg.error_level <= 255 or cfg.downscale < 1:
            raise UserError(f"warp-error level {cfg.error_level} must be in 0..255 and downscale {cfg.downscale} at least 1")
        self.config = cfg
        self.flow = DISFlow("ultrafast", downscale=cfg.downscale)
        self._grid: tuple[tuple[int, int], np.ndarray, np.ndarray] | None = None

    @staticmethod
    def _frame(f_low: torch.Tensor) -> np.ndarray:
        """1 x low_ch x h x w -> the frame inside it: 8h x 8w uint8 grey."""
        return to_grey(F.pixel_shuffle(f_low[:, -FRAME_CHANNELS:].contiguous(), 8))

    def _pixels(self, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        if self._grid is None or self._grid[0] != hw:
            xs, ys = np.meshgrid(np.arange(hw[1], dtype=np.float32), np.arange(hw[0], dtype=np.float32))
            self._grid = (hw, xs, ys)
        return self._grid[1], self._grid[2]

    def forward(self, f_low_key: torch.Tensor, f_low_cur: torch.Tensor) -> torch.Tensor:
        if f_low_key.shape != f_low_cur.shape:
            raise ValueError(f"key and current f_low differ in shape: {tuple(f_low_key.shape)} and {tuple(f_low_cur.shape)}")
        out = []
        for i in range(f_low_key.shape[0]):
            key = self.flow.shrink(self._frame(f_low_key[i : i + 1]))
            cur = self.flow.shrink(self._frame(f_low_cur[i : i + 1]))
            flow = self.flow.on_shrunk(cur, key)  # backward, in the pixels of the shrunk frames
            xs, ys = self._pixels((cur.shape[0], cur.shape[1]))
            warped = cv2.remap(key, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            unexplained = np.abs(cur.astype(np.int16) - warped.astype(np.int16)) > self.config.error_level
            out.append(float(unexplained.mean()))
        return torch.tensor(out, dtype=torch.float32)


Predictor = DeviationPredictor | WarpErrorPredictor


WARP_ONLY = ("kind", "error_level", "downscale")  # config keys that learned files leave out (older versions read those)


def config_from(saved: dict[str, object]) -> DeviationConfig:
    """The :class:`DeviationConfig` of a scheduler file's saved config (keys it lacks: defaults)."""
    known = set(DeviationConfig.__dataclass_fields__)
    unknown = sorted(set(saved) - known)
    if unknown:
        raise UserError(f"the scheduler file's predictor has settings this lowlatseg does not know ({', '.join(unknown)}); "
                        "it was written by a newer lowlatseg: upgrade, or train a scheduler with this one")
    return DeviationConfig(**saved)  # type: ignore[arg-type]


def saved_config(cfg: DeviationConfig) -> dict[str, object]:
    """What a scheduler file stores of a config: a learned predictor's without the warp-error keys."""
    out = asdict(cfg)
    if cfg.kind == "learned":
        for k in WARP_ONLY:
            out.pop(k)
    return out


def build_predictor(cfg: DeviationConfig) -> Predictor:
    """The predictor of a config's ``kind`` (weights not loaded)."""
    if cfg.kind == "learned":
        return DeviationPredictor(cfg)
    if cfg.kind == "warp-error":
        return WarpErrorPredictor(cfg)
    raise UserError(f"deviation predictor kind {cfg.kind!r} is not one of {', '.join(KINDS)}; the scheduler file "
                    "was written by a newer lowlatseg")
