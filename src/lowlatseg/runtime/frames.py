"""What every runtime shares: the per-frame result, the network input size, frame preparation."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from lowlatseg.data.transforms import to_tensor
from lowlatseg.errors import ParameterError, UserError


@dataclass(frozen=True)
class FrameResult:
    """What a runtime returns for one frame."""

    index: int  # frame number in the stream, from 0
    labels: np.ndarray  # h x w uint8 class ids at the network's input size
    is_keyframe: bool  # this frame was chosen as a keyframe (high() runs on it, maybe in the background)
    keyframe_index: int  # the keyframe whose high-level features produced these labels (== index: per-frame result)
    compute_ms: float  # main-path time inside step(), ms (a keyframe's high handed to the executor is not counted)
    deviation: float | None = None  # the scheduler's predicted (or, oracle, true) deviation, if it was asked


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
        raise ParameterError(f"{{size}} {text!r} is not valid; use HxW (e.g. 360x480), a height (e.g. 360) or 'native'", "size") from None


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
    """H x W x 3 uint8 RGB frame -> 1 x 3 x size float tensor in [0, 1] (area resize), stored
    channels-last like the runtime's inference copy of the network (see nn/inference.py)."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise UserError(f"a frame must be H x W x 3 uint8 RGB, got shape {frame.shape} and dtype {frame.dtype}")
    if frame.shape[:2] != size:
        frame = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return to_tensor(frame).unsqueeze(0).contiguous(memory_format=torch.channels_last)
