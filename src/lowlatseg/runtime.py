"""Per-stream runtimes: objects with ``reset()`` and ``step(frame) -> FrameResult``.

The network stays stateless; a runtime owns everything that lives from one frame to the
next. This module holds the per-frame runtime (every frame runs ``low -> high -> head``)
and the frame preparation shared by every runtime.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from lowlatseg.data.transforms import to_tensor
from lowlatseg.errors import UserError
from lowlatseg.nn.splitnet import SplitSegNet


@dataclass(frozen=True)
class FrameResult:
    """What a runtime returns for one frame."""

    index: int  # frame number in the stream, from 0
    labels: np.ndarray  # h x w uint8 class ids at the network's input size
    is_keyframe: bool  # high() ran on this frame
    keyframe_index: int  # the frame whose high-level features produced these labels
    compute_ms: float  # time inside step(), milliseconds


def parse_size(text: str) -> tuple[int, int] | int | None:
    """'HxW' -> (H, W); 'H' -> H (height, keep aspect); 'native' -> None."""
    t = text.strip().lower()
    if t == "native":
        return None
    try:
        if "x" in t:
            h, w = (int(v) for v in t.split("x"))
            if h < 16 or w < 16:
                raise ValueError
            return (h, w)
        h = int(t)
        if h < 16:
            raise ValueError
        return h
    except ValueError:
        raise UserError(f"--size {text!r} is not valid; use HxW (e.g. 360x480), a height (e.g. 360) or 'native'") from None


def network_size(frame_hw: tuple[int, int], size: tuple[int, int] | int | None) -> tuple[int, int]:
    """The H x W the network runs at for frames of ``frame_hw``; a bare height keeps the aspect
    ratio with the width rounded to a multiple of 8."""
    if size is None:
        return frame_hw
    if isinstance(size, tuple):
        return size
    h, w = frame_hw
    return size, max(8, int(round(w * size / h / 8)) * 8)


def prepare(frame: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """H x W x 3 uint8 RGB frame -> 1 x 3 x size float tensor in [0, 1] (bilinear resize)."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise UserError(f"a frame must be H x W x 3 uint8 RGB, got shape {frame.shape} and dtype {frame.dtype}")
    if frame.shape[:2] != size:
        frame = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return to_tensor(frame).unsqueeze(0)


class PerFrameRuntime:
    """Runs the whole network on every frame: the accuracy reference."""

    def __init__(self, model: SplitSegNet, *, size: tuple[int, int] | int | None = (360, 480)) -> None:
        self.model = model.eval()
        self.size = size
        self.reset()

    def reset(self) -> None:
        self._index = 0

    @torch.inference_mode()
    def step(self, frame: np.ndarray) -> FrameResult:
        t0 = time.perf_counter()
        hw = network_size(frame.shape[:2], self.size)
        x = prepare(frame, hw)
        labels = self.model(x).argmax(1)[0].to(torch.uint8).numpy()
        result = FrameResult(
            index=self._index, labels=labels, is_keyframe=True, keyframe_index=self._index,
            compute_ms=(time.perf_counter() - t0) * 1000,
        )
        self._index += 1
        return result
