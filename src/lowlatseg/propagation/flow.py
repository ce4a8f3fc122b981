"""Dense optical flow (OpenCV DIS) and flow warping of feature maps.

Flow convention: ``flow`` is B x 2 x h x w in pixels of the grid it is given on; channel 0 is
dx (columns), channel 1 is dy (rows). It is *backward* flow: the content at current-frame
pixel (x, y) was at keyframe pixel (x + dx, y + dy). Warping samples the keyframe there
(bilinear, borders replicate), so zero flow returns the input exactly.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


def to_grey(image: torch.Tensor) -> np.ndarray:
    """1 x 3 x H x W float RGB [0, 1] -> H x W uint8 grey."""
    rgb = (image[0].permute(1, 2, 0).clamp(0, 1) * 255).to(torch.uint8).numpy()
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


class DISFlow:
    """Backward flow current -> key with OpenCV's DIS (fast, real, CPU).

    ``downscale`` s > 1 runs DIS on the grey frames shrunk s times per side (area-averaged): the
    features it warps lie on a grid 8 times coarser than the frame, and DIS's cost grows with
    the pixels (docs/figures/flow_resolution.py measures both)."""

    def __init__(self, preset: str = "fast", downscale: int = 1) -> None:
        if preset not in _PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; choose one of {', '.join(_PRESETS)}")
        if downscale < 1:
            raise ValueError(f"DIS downscale must be a whole number >= 1, not {downscale}")
        self.preset, self.downscale = preset, int(downscale)
        self._dis = cv2.DISOpticalFlow_create(_PRESETS[preset])  # type: ignore[attr-defined]

    def __deepcopy__(self, memo: dict[int, object]) -> DISFlow:
        """A fresh DIS object with the same settings (OpenCV's cannot be copied; it holds no state
        between calls that matters)."""
        return DISFlow(self.preset, self.downscale)

    def shrink(self, grey: np.ndarray) -> np.ndarray:
        """H x W uint8 grey -> the frame DIS sees: (H // s) x (W // s), area-averaged (s = 1: as is)."""
        s = self.downscale
        if s == 1:
            return grey
        h, w = grey.shape[:2]
        return cv2.resize(grey, (max(w // s, 1), max(h // s, 1)), interpolation=cv2.INTER_AREA)

    def __call__(self, current_grey: np.ndarray, key_grey: np.ndarray) -> np.ndarray:
        """h x w x 2 float32 flow such that current(p) ~ key(p + flow(p)), in pixels of the frames
        DIS saw: h x w = H x W shrunk ``downscale`` times (:func:`flow_to_grid` rescales it)."""
        return self.on_shrunk(self.shrink(current_grey), self.shrink(key_grey))

    def on_shrunk(self, current_small: np.ndarray, key_small: np.ndarray) -> np.ndarray:
        """The same flow for frames the caller has shrunk already (:meth:`shrink`)."""
        return self._dis.calc(current_small, key_small, None)


def flow_to_grid(flow_img: np.ndarray, grid_hw: tuple[int, int]) -> torch.Tensor:
    """H x W x 2 flow in pixels of the frame it was computed on -> 1 x 2 x h x w flow in
    feature-grid pixels (area-averaged)."""
    h, w = grid_hw
    H, W = flow_img.shape[:2]
    small = cv2.resize(flow_img, (w, h), interpolation=cv2.INTER_AREA)
    small[..., 0] *= w / W
    small[..., 1] *= h / H
    return torch.from_numpy(np.ascontiguousarray(small)).permute(2, 0, 1).unsqueeze(0)


def warp(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp B x C x h x w features by B x 2 x h x w grid-pixel flow (see module docstring)."""
    b, _, h, w = features.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=features.dtype, device=features.device),
        torch.arange(w, dtype=features.dtype, device=features.device),
        indexing="ij",
    )
    x = xs.unsqueeze(0) + flow[:, 0]
    y = ys.unsqueeze(0) + flow[:, 1]
    # normalise pixel centres to [-1, 1] with align_corners=True: pixel 0 -> -1, pixel w-1 -> +1
    gx = 2 * x / max(w - 1, 1) - 1
    gy = 2 * y / max(h - 1, 1) - 1
    grid = torch.stack([gx, gy], dim=-1).expand(b, h, w, 2)
    return F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=True)
